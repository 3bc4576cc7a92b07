"""Labels for documents: rules and the user's functions vote, a label model combines the votes,
people answer in a terminal session, label errors are found, and models propose labels
(docs/labeling.md). Every label keeps its source, who or what gave it, when and how sure."""
