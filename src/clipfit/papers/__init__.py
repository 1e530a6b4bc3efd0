"""The papers' tables and figures, a layer above the Python API: `clipfit paper list` (`listing.paper_list`) and
`clipfit paper run` (`reproduce.paper_run`), both also `clipfit.paper_list` / `clipfit.paper_run`.

The data: `entries` (every table and figure: its protocol call, its numbers file, how its printed labels map onto
our runs), `numbers` (the papers' numbers, read from `numbers/*.csv`), `labels` (a printed label -> the dimensions of
our runs). Running an entry: `plan` (the protocol call, through the API), `compare` (our value of each cell beside
the paper's), `render` (the printed rows and the files), `protocol_figures` (figures drawn from a protocol's
results), `analysis_figures` (figures that are analyses), `static` (entries that train nothing), `dry_run`.
"""
