"""vidpeft-sweep: a grid of backbones x methods x datasets x seeds, each cell an ordinary vidpeft-train run."""
from .emit import EMITTERS
from .grid import Cell, Dataset, Grid, load_grid
from .runner import Outcome, prepare_datasets, run_grid, summary

__all__ = ["EMITTERS", "Cell", "Dataset", "Grid", "load_grid", "Outcome", "prepare_datasets", "run_grid", "summary"]
