"""DVC stage method@<method>: validate one distillation method's params group and
write it, resolved with the method's defaults, for the distill stages to read.

This stage is what scopes an ablation: `dvc exp run -S loss.edge_weight=...`
changes only method@bpkd's params, so only BPKD's distill stages rerun."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--method", required=True)
ap.add_argument("--out", required=True, help="resolved params (.json)")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.distill.method_config import resolve

    p = params.load()
    resolve(p, args.method, args.out)


cli.run(main)
