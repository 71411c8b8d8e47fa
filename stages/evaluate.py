"""DVC stages evaluate@<dataset>-<pair>-<model> and released@<dataset>-<pair>-<model>:
mIoU, mAcc and aAcc of one checkpoint on the prepared validation split (mmseg's
test loop and IoUMetric). With --released the checkpoint is the one the seed
README publishes for that model (bpkd/weights/registry.yaml), built as the
architecture the registry names for it (the pair's, except Cityscapes PSPNet's
baseline, mmseg's pspnet_r18b); where the README has none for that dataset and pair,
the stage records so ({"released": false}) and the report shows the row as `—`."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--model", required=True, help="teacher, baseline or a method name")
source = ap.add_mutually_exclusive_group(required=True)
source.add_argument("--released", action="store_true",
                    help="evaluate the released checkpoint of --model (the teacher's from the mmseg model zoo)")
source.add_argument("--checkpoint",
                help="a checkpoint path, or an http(s) URL (e.g. a released checkpoint of the paper's README): "
                     "downloaded to data/weights/downloads/, verified, converted to data/weights/converted/")
ap.add_argument("--sha256", help="expected SHA-256 (or 8+ digit prefix) of a --checkpoint URL; "
                                 "default: the hash bpkd/weights/registry.yaml lists for that URL, if any")
ap.add_argument("--out", required=True, help="summary metrics (.json)")
ap.add_argument("--per-class", required=True, help="per-class IoU plot data (.json)")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.datasets import specs
    from bpkd.evaluation.evaluate import evaluate, write_metrics
    from bpkd.models.pairs import arch_of
    from bpkd.training.run import prepared_info
    from bpkd.weights.resolve import loadable_checkpoint

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    # The teacher is always evaluated (evaluate_teacher@…); students must be listed.
    model = "teacher" if args.model == "teacher" else p.check("released" if args.released else "model", args.model)
    arch = arch_of(pair, "teacher" if model == "teacher" else "student")
    source = args.checkpoint
    if args.released:
        from bpkd.weights import registry

        if model == "teacher":
            source = registry.teacher(dataset, pair).url
        elif (dataset, pair, model) not in registry.load().released:
            # The paper's README links no file for this dataset and pair (Cityscapes' HRNet
            # CIRKD, Pascal Context 59's HRNet baseline); `released` names it for the others.
            from bpkd.evaluation.evaluate import write_not_released

            write_not_released(args.out, args.per_class)
            print(f"{dataset}/{pair}/{model}: the paper released no checkpoint ({registry.REGISTRY_FILE} lists "
                  "none): its row shows —")
            return
        else:
            # The file's own architecture where the seed released another one than the
            # pair's student (Cityscapes PSPNet's baseline is mmseg's pspnet_r18b).
            source, arch = registry.released(dataset, pair, model).url, registry.released_arch(dataset, pair, model)
    data_root = f"data/prepared/{dataset}"
    info = prepared_info(data_root)
    crop = p.train["student"].crop
    checkpoint = loadable_checkpoint(source, arch, specs.get(dataset).num_classes, sha256=args.sha256)
    summary, per_class = evaluate(dataset=dataset, arch=arch, checkpoint=str(checkpoint), data_root=data_root,
                                  image_hw=tuple(info["image_hw"]) if info.get("image_hw") else None, crop=crop)
    write_metrics(summary, per_class, args.out, args.per_class)
    print(f"{dataset}/{pair}/{model} ({arch}): "
          + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))


cli.run(main)
