"""The papers' evaluation protocols over grids of runs (datasets x shots x methods x seeds), sharing one mechanism
(`core`: run jobs, reuse and resume, results.json, tables):

- `grid`: CoOp's few-shot and base-to-new protocols, one or several datasets;
- `transfer`: cross-dataset and domain-shift transfer from one source dataset;
- `regimes`: the LayerNorm-tuning paper's low/high-data x low/high-similarity regimes;
- `episodic`: episodic few-shot with the Classifier-Baseline (Mini-ImageNet, CUB).
"""
