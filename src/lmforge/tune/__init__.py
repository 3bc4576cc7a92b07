"""Hyperparameter search on Optuna: `lmforge tune` and the study behind `lmforge compare search`.

space.py checks and samples the search space, objective.py says what a trial is scored on (the
validation loss or a task's accuracy) and in which direction, samplers.py names Optuna's samplers
and pruners, trial.py trains one trial through the train stage's trainer factory with a pruning
callback, storage.py opens the journal file or database a study lives in, study.py runs the search (in one
process or several workers), results.py writes RUN/tune/.
"""
