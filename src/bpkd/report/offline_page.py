"""An HTML template for ``dvc plots show --html-template`` that renders with no network.

DVC's own page loads vega, vega-lite and vega-embed from a CDN, so on a machine
without internet (a typical cluster node) only the images show. This template
inlines the three libraries instead, taken from the pinned ``vl-convert-python``
wheel (it ships them to render Vega-Lite offline; ``javascript_bundle`` exposes
``vegaEmbed`` globally, which is what DVC's chart snippets call). The file is about
0.9 MB, so it is generated at install time (``make venv``) and not kept in git:

    python -m bpkd.report.offline_page .dvc/plots/offline.html
    dvc plots show --html-template .dvc/plots/offline.html
"""
from __future__ import annotations

import argparse

from ..atomic import write_text

# The Vega-Lite the page and the static figures (bpkd.report.figures) both use.
VL_VERSION = "5.21"

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>bpkd-pipeline plots</title>
    <script>{bundle}</script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    """The template text; DVC fills ``{plot_divs}`` and ``{refresh_tag}`` (no ``{scripts}``:
    leaving that placeholder out is what keeps DVC's CDN script tags off the page)."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VL_VERSION)
    # Inline JS must not close its own <script> element early.
    bundle = bundle.replace("</script", "<\\/script")
    for placeholder in ("{plot_divs}", "{refresh_tag}", "{scripts}"):
        if placeholder in bundle:  # DVC would substitute inside the library
            raise ValueError(f"the vega bundle contains DVC's placeholder {placeholder}")
    return PAGE.replace("{bundle}", bundle)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="template to write (e.g. .dvc/plots/offline.html)")
    args = ap.parse_args(argv)
    write_text(args.out, page())
    print(f"{args.out}: offline template for `dvc plots show --html-template {args.out}`")


if __name__ == "__main__":
    main()
