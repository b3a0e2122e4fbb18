"""Machine-learned Li diffusivity: random forest, XGBoost and SISSO-style symbolic regression.

:func:`~amorph.regression.training.train_models` runs the protocol of Zheng et al., npj Comput.
Mater. (2024) on a :class:`~amorph.regression.dataset.Table` (see :mod:`.ensembles` for RF/XGBoost
and :mod:`.sisso` for the symbolic regression of ln D against the features and 1/(k_B T)); the
models' parity plots are :mod:`.parity`, saved models and predictions :mod:`.predict`. All models
share one 85/15 split (random state 62). Needs scikit-learn and xgboost, not torch.
"""

from amorph.regression.dataset import Table, read_table
from amorph.regression.training import TrainingResult, train_models

__all__ = ["Table", "TrainingResult", "read_table", "train_models"]
