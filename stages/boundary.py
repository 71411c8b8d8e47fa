"""DVC stage boundary@<dataset>-<pair>: error rate, prediction entropy and KL to the
teacher against distance to the nearest ground-truth boundary, for the teacher and
every student trained here (metrics/boundary/<dataset>/<pair>/, one JSON per model,
seed folders as metrics/eval has them), plus the plot tables, uncertainty panels and
Grad-CAM figure in metrics/boundary_plots/<dataset>/<pair>/ (params.yaml `boundary`; docs/boundary.md)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--out", required=True, help="metrics folder: metrics/boundary/<dataset>/<pair>")
ap.add_argument("--figures", required=True, help="plots folder: metrics/boundary_plots/<dataset>/<pair>")
args = ap.parse_args()


def main():
    from pathlib import Path

    from bpkd import layout, params
    from bpkd.boundary.views import Model, run
    from bpkd.models.pairs import arch_of
    from bpkd.report.tables import METHOD_LABELS
    from bpkd.training.run import prepared_info

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    settings = p.boundary()
    data_root = f"data/prepared/{dataset}"
    info = prepared_info(data_root)
    first = p.seeds[0]  # plots and panels draw the first seed's run of each student, as the grid
    titles = {"teacher": "teacher", "baseline": "baseline", **METHOD_LABELS}
    models = [Model("teacher", None, "teacher", arch_of(pair, "teacher"), layout.checkpoint(dataset, pair, "teacher"), True)]
    for name in p.students:
        for seed in p.seeds_of(name):
            models.append(Model(name, seed, titles.get(name, name), arch_of(pair, "student"),
                                layout.checkpoint(dataset, pair, name, seed), seed == first))
    done = run(dataset=dataset, pair=pair, data_root=data_root,
               image_hw=tuple(info["image_hw"]) if info.get("image_hw") else None, crop=p.train["student"].crop,
               models=models, out=Path(args.out), figures=Path(args.figures), max_distance_paper=settings.max_distance,
               panel_images=settings.panel_images, cam_image=settings.cam_image, cam_class=settings.cam_class,
               kl_scale=settings.kl_scale, templates_dir=Path(".dvc/plots"))
    print(f"{args.out}: {len(models)} models x {done['images']} images in {done['seconds']} s")


cli.run(main)
