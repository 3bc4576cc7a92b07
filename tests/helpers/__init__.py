"""Helpers shared by the tests: synthetic runs and tiny configs (`runs`), sample texts and data-stage
inputs (`texts`), synthetic documents in split files (`documents`), the train worker run in a child
process (`worker`) and a reader for W&B offline files (`wandb_records`). Test modules and conftest
files import from here, never from one another."""
