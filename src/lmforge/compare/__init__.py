"""Multi-run experiments (`lmforge compare NAME`): each is a list of runs of the one flow plus a table."""
