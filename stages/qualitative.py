"""DVC stage qualitative@<dataset>-<pair>: a grid of fixed validation images with
ground truth, edge/body regions and the prediction of the teacher and of every
student trained here (the first seed's run of each, seed `seeds[0]`)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--images", type=int, nargs="+", default=[0, 1, 2, 3], help="validation indices (rows)")
ap.add_argument("--out", required=True, help="grid (.png)")
args = ap.parse_args()


def main():
    import cv2

    from bpkd import layout, params
    from bpkd.atomic import atomic_path
    from bpkd.models.pairs import arch_of
    from bpkd.report.qualitative import render_grid
    from bpkd.report.tables import METHOD_LABELS
    from bpkd.training.run import prepared_info

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    data_root = f"data/prepared/{dataset}"
    info = prepared_info(data_root)
    titles = {"teacher": "teacher", "baseline": "baseline", **METHOD_LABELS}
    seed = p.seeds[0]  # one run of each model: the first seed's students
    models = [(titles.get(m, m), arch_of(pair, "teacher" if m == "teacher" else "student"),
               layout.checkpoint(dataset, pair, m, None if m == "teacher" else seed)) for m in ("teacher", *p.students)]
    grid = render_grid(dataset=dataset, data_root=data_root,
                       image_hw=tuple(info["image_hw"]) if info.get("image_hw") else None,
                       crop=p.train["student"].crop, models=models, indices=args.images)
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise OSError(f"{args.out}: could not encode the grid as PNG")
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(png.tobytes())
    print(f"{args.out}: {grid.shape[1]}x{grid.shape[0]} px, {len(args.images)} images x {len(models)} models")


cli.run(main)
