"""python -m bpkd.study {list | run NAME [--jobs N | --workspace] | render NAME}

run: queue the points of params.yaml's studies.NAME as DVC experiments
(`dvc exp run --queue`), run the queue (`dvc queue start`), wait, then render;
with --workspace, run them one after another in the workspace instead.
Points already run on this commit with the same params are reused, not retrained.
render: write metrics/studies/NAME.md, NAME.png and charts/NAME.tsv (drawn by
`dvc plots show`) from DVC's experiment records (`dvc exp show --json`); a study
whose points run several seeds (or `model: all`) gets means ± std and paired
differences instead, read from each experiment's commit (bpkd.study.seeded)."""
from bpkd import cli

ap = cli.parser(__doc__)
sub = ap.add_subparsers(dest="command", required=True)
sub.add_parser("list", help="the declared studies and their points")
run_p = sub.add_parser("run", help="run the study through DVC's queue, then render it")
run_p.add_argument("name")
run_p.add_argument("--jobs", type=int, default=1,
                   help="queue workers (default 1: a training run already uses the machine's cores)")
run_p.add_argument("--workspace", action="store_true",
                   help="run the points one after another in the workspace, not the queue: each reuses what "
                        "this workspace has run (its dvc.lock), where the queue starts from the commit's; the "
                        "workspace ends with the last point (dvc exp apply <name> brings back another); rerun after a kill, it "
                        "starts again from the params it started from")
render_p = sub.add_parser("render", help="render the study's table and plot from DVC's experiment records")
render_p.add_argument("name")
ap.add_argument("--out", default="metrics/studies", help="folder of the rendered studies")
args = ap.parse_args()


def main():
    from pathlib import Path

    import yaml

    from bpkd.study import queue, records, render, seeded, spec

    with open("params.yaml") as f:
        tree = yaml.safe_load(f)
    if args.command == "list":
        for name in (tree.get("studies") or {}):
            study = spec.load(tree, name)
            print(f"{name} ({study.model}): " + "; ".join(
                f"{p.label}: {', '.join(f'{k}={v}' for k, v in p.overrides.items()) or 'defaults'}"
                for p in study.points))
        return
    study = spec.load(tree, args.name)
    if args.command == "run":
        queue.run(study, jobs=args.jobs, workspace=args.workspace)
    baseline, experiments = records.show()
    if baseline is None:
        raise spec.StudyError("dvc exp show found no commit: a study runs experiments on a git commit")
    done = {r.name: r for r in experiments if r.state == "success"}
    ours = [done[p.experiment(study.name)] for p in study.points if p.experiment(study.name) in done]
    if seeded.several(study, ours):  # several seeds a point: means, spreads and paired differences
        written = seeded.write(study, done, Path(args.out), base_rev=baseline.rev)
    else:
        written = render.write(study, baseline, done, args.out)
    for path in written:
        print(path)
    print(open(f"{args.out}/{study.name}.md").read())


cli.run(main)
