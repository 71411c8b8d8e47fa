"""DVC stage charts@<dataset>-<pair>: the tables behind the plots page's charts of
one dataset/pair. The step logs of teacher, baseline and every distilled student
(the first seed's) are merged per term (val mIoU, whose last point is each model's
evaluate@ score; decode CE; total loss: one line per run), each method's own loss
terms are gathered in one table, and every model's per-class IoU in another, so
`dvc plots show` draws a handful of curated charts per pair instead of one per file
of every DVCLive log."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--out", required=True,
                help="folder: <term>.tsv per overlaid term, terms.tsv, balance.tsv, per_class.tsv")
args = ap.parse_args()


def main():
    import json
    from pathlib import Path

    from bpkd import layout, params
    from bpkd.atomic import atomic_path
    from bpkd.report import curves, per_class
    from bpkd.report.tables import method_rows

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    seed = p.seeds[0]  # the page draws one run of each model: the first seed's students
    runs = {m: layout.train_log(dataset, pair, m, None if m == "teacher" else seed) for m in ("teacher", *p.students)}
    # The val mIoU of a run's last iteration is its evaluate@ score (training skips that
    # validation: bpkd.training.val_loop); runs not trained or not evaluated yet have none.
    finals = {}
    for m, log_dir in runs.items():
        score = Path(layout.eval_json(dataset, pair, m, None if m == "teacher" else seed))
        step = curves.last_step(log_dir)
        if step is not None and score.is_file():
            finals[m] = (step, str(json.loads(score.read_text())["mIoU"]))
    merged = curves.collect(runs, finals={"mIoU": finals})
    distilled = {m: runs[m] for m in p.methods if m in p.models}
    terms, balance = curves.method_terms(distilled), curves.method_balance(distilled)
    # Every model of the tables, released ones included (no seed: one given checkpoint).
    evaluated = {m: layout.per_class_json(dataset, pair, m, seed if m in p.students else None)
                 for m in ("teacher", "baseline", *method_rows(p.methods, p.released))
                 if m in ("teacher", *p.students, *p.released)}
    classes = per_class.collect(evaluated)
    with atomic_path(args.out, is_dir=True) as tmp:
        # Every declared table, a header alone where fewer than two runs logged the term
        # (every student released: no run but the teacher's, none on a real dataset).
        curves.write({term: merged.get(term, []) for term in curves.OVERLAID}, tmp)
        curves.write_terms(terms, tmp / "terms.tsv")
        curves.write_terms(balance, tmp / "balance.tsv")
        per_class.write(classes, tmp / "per_class.tsv")
    print(f"{args.out}: {', '.join(merged)} ({len(runs)} runs, seed {seed}), terms.tsv ({len(terms)} rows), "
          f"balance.tsv ({len(balance)} rows), per_class.tsv ({len(classes)} rows)")


cli.run(main)
