"""vidpeft-table: the benchmark's table (trainable parameters, top-1/top-5, PPT) from finished runs."""
from .build import REFERENCES, Table, build_table, load_reference, ppt
from .render import markdown, pareto, records, write_all
from .runs import Run, find_run_dirs, read_run, read_runs

__all__ = ["REFERENCES", "Table", "build_table", "load_reference", "ppt", "markdown", "pareto", "records",
           "write_all", "Run", "find_run_dirs", "read_run", "read_runs"]
