"""DVC stage complexity@<dataset>: FLOPs(G) and Parameters(M) of the teacher and
student of every pair in params.yaml, with mmengine's complexity analysis (the
convention is in bpkd.models.complexity). Each row counts the paper's 150-class
heads, as the paper's tables do (what the results tables show), and under
``dataset_heads`` the dataset's own class count (what a model trained on it costs)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--out", required=True, help="complexity rows (.json)")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.atomic import write_json
    from bpkd.models.complexity import complexity, head_classes
    from bpkd.models.pairs import PAIRS

    p = params.load()
    dataset = p.check("dataset", args.dataset)
    archs = dict.fromkeys(a for pair in p.pairs for a in (PAIRS[pair].teacher, PAIRS[pair].student))
    rows = []
    for arch in archs:
        row = complexity(arch, head_classes(dataset, "seed"))
        own = complexity(arch, head_classes(dataset, "dataset"))
        row["dataset_heads"] = {k: own[k] for k in ("num_classes", "flops_g", "params_m")}
        rows.append(row)
    write_json(args.out, rows)


cli.run(main)
