"""`glueslim leaderboard`: gather scores, profiles, training logs and provenance into one leaderboard.

Reads (under --results), for every row (a model, or a deployed form of one: `<model>-<form>`):
  scores/{model}.json                      written by `glueslim score`
  profile/{model}.json                     written by `glueslim profile`
  models/{model}/{task}/glueslim.json      written by `glueslim finetune` / `glueslim distill`
  models/{model}/{task}/train_log.jsonl    written by `glueslim finetune` / `glueslim distill`
  data/{task}/manifest.json                written by `glueslim prepare-data`
  scores/{run}.json                        each further seed's run of a row (--seed-runs; optional)
  ablations/*.json                         ablation tables, written by other stages (optional)
  benchmarks/{rule}/**/*.tsv               Snakemake `benchmark:` files (optional)

Writes reports/leaderboard.json (fields: README, section "leaderboard.json") and one self-contained
reports/leaderboard.html (inline CSS/JS/SVG, no network access needed to open it), and optionally the
main charts as standalone SVG files (render.FIGURES). The workflow writes them to results/leaderboard/ and,
with --publish, copies them to reports/ only once all are written, so a failed render keeps the last good report
there.

The modules, in the order data flows:
  values.py   number and JSON-value helpers every module shares
  collect.py  the readers: one function per input file, each checked; a bad input is a UserError
  checks.py   value checks: metrics in their range, positive latencies and sizes (file and key named)
  deployed.py each row's deployed form (form, backend, source model, kernel dtypes, emulated), the row order,
              skipped forms, the CPU's instructions per dtype
  floors.py   per-dtype device peaks, each timed point's floor at the dtype-correct peak, what holds a row back
  seeds.py    rows trained once per seed (--seed-runs): mean and sample sd over the runs' score files, the
              noise rule (within_noise) and each row's "≈" against the row above
  comparisons.py  the seed-aware "KD vs no-KD twin" (--twins) and ingredient (--ablation) tables (pure)
  published_view.py  published figures beside our rows (--published, --references): never in our scores
  budget.py   the "best per latency budget" tables (pure)
  build.py    `build_leaderboard`: rows, Pareto frontier, provenance, warnings -> the JSON document (pure)
  markers.py  marker shapes (one per form) for the charts
  charts.py   the SVG chart library (line charts, the Pareto plot)
  relative_chart.py  the "% of teacher against speed-up" chart: our rows and hollow published markers
  render.py   `render_html` and `figures`: jinja2 filters and views -> the page (pure)
  command.py  the command's arguments and `run`, which writes the files atomically, and `publish`
"""
