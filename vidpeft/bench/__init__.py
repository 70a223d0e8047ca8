"""vidpeft-bench: what each method costs (parameters, memory, speed, storage), each case
measured in a fresh process (`measure.run_fresh`), reported as a table, JSON and a plot."""
