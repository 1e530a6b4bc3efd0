"""The papers' evaluation protocols over grids of runs (datasets x shots x methods x seeds).

Every protocol shares one mechanism: it turns its arguments into cells, one (row, seed) of its table each, naming
the run it needs (`jobs`: a `RunJob` per run, `ensure_run` trains, resumes or reuses it and adds the evaluations
it lacks); `cells` checks the grid's datasets and runs its cells (here or through an executor: `executors`);
`results` aggregates the cells' values over seeds into results.json and lays out tables; `layouts` prints the
paper's table of a results.json. `dryrun` lists a grid's runs, their settings and an estimate of their time instead.

The protocols, each with its table layout:
- `grid`: CoOp's few-shot and base-to-new protocols, one or several datasets;
- `transfer`: cross-dataset and domain-shift transfer from one source dataset;
- `regimes`: the LayerNorm-tuning paper's low/high-data x low/high-similarity regimes;
- `episodic`: episodic few-shot, stage two the Classifier-Baseline (`classifier_baseline`).
"""
