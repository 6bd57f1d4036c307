"""The evaluation report: one self-contained HTML file (crops and plots inlined as base64), so
it can be mailed, archived next to a model, or opened offline years later and still show what
the numbers were computed on.

Sections: headline figures with the image-blind baseline row, per-attribute table, plots
(per-attribute accuracy, reliability of head confidences, coverage vs accuracy, colour
confusion, training curves when the model directory has them) and a gallery of crops with the
ground truth, both generated captions and a right/wrong/abstained mark per attribute.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from personvlm.evaluation.captions import METRIC_NAMES
from personvlm.evaluation.evaluate import Sample
from personvlm.imageio import ImageError, load_image
from personvlm.schema import NAMES, UNKNOWN, PersonDescription, to_compact

THUMB_HEIGHT = 160

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin-bottom:16px}
table{border-collapse:collapse;margin:8px 0;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;font-size:13px}
th:first-child,td:first-child{text-align:left}
tr.baseline td{color:#777;font-style:italic}
.plots img{max-width:100%;margin:8px 0;background:#fff;border:1px solid #eee}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.card{display:flex;gap:10px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card img{height:160px;width:auto;image-rendering:pixelated;border-radius:3px;flex:none}
.card .text{font-size:12px;line-height:1.35;overflow-wrap:anywhere}
.card .label{color:#888;font-weight:600}
.marks{margin-top:4px}
.mark{display:inline-block;margin:1px;padding:0 4px;border-radius:3px;font-size:11px}
.ok{background:#d7f5dc;color:#14521e}.bad{background:#fbd9d9;color:#7a1212}.abst{background:#eee;color:#555}
"""


def png_data_uri(fig: Any) -> str:
    """A matplotlib figure as an inline PNG ``data:`` URI (and the figure closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_data_uri(path: Path, height: int = THUMB_HEIGHT) -> str:
    """A crop scaled to ``height`` pixels as an inline JPEG; decoded through ``personvlm.imageio``."""
    img = load_image(path)
    scale = height / img.height
    img = img.resize((max(1, round(img.width * scale)), height))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --- plots ------------------------------------------------------------------------------------
def accuracy_plot(metrics: dict[str, Any]) -> str:
    """Per-attribute accuracy from the heads and the parsed caption, with the majority baseline."""
    plt = _pyplot()
    rows = [r for r in metrics["per_attribute"] if r["labelled"]]
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 3.6))
    ax.bar(x - 0.2, [r["accuracy"] or 0 for r in rows], 0.4, label="heads")
    ax.bar(x + 0.2, [r["caption_accuracy"] or 0 for r in rows], 0.4, label="parsed caption")
    ax.scatter(x, [r["majority_accuracy"] or 0 for r in rows], marker="_", s=200, color="k", label="majority class")
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (abstain = wrong)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png_data_uri(fig)


def reliability_plot(metrics: dict[str, Any]) -> str:
    """Reliability diagram of head confidences (perfect calibration is the diagonal)."""
    plt = _pyplot()
    bins = [b for b in metrics["reliability"]["bins"] if b["count"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=1)
    ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=0.1, align="edge",
           edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="tab:red", label="mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="head confidence", ylabel="accuracy",
           title=f"reliability (ECE {metrics['reliability']['ece'] or 0:.3f})")
    ax.legend(fontsize=8)
    curve = [p for p in metrics["coverage_curve"] if p["selective_accuracy"] is not None]
    ax2.plot([p["coverage"] for p in curve], [p["selective_accuracy"] for p in curve], "o-")
    ax2.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="coverage (share answered)", ylabel="accuracy when answering",
            title="abstaining below a confidence threshold")
    ax2.grid(alpha=0.3)
    return png_data_uri(fig)


def confusion_plot(metrics: dict[str, Any]) -> str:
    """Colour confusion matrices (rows: truth, columns: head answer incl. unknown), row-normalised."""
    plt = _pyplot()
    mats = [m for m in metrics["color_confusion"] if np.sum(m["counts"])]
    fig, axes = plt.subplots(1, len(mats), figsize=(4.6 * len(mats), 4.2), squeeze=False)
    for ax, m in zip(axes[0], mats, strict=True):
        counts = np.array(m["counts"], dtype=float)
        norm = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(m["columns"])), m["columns"], rotation=90, fontsize=7)
        ax.set_yticks(range(len(m["rows"])), m["rows"], fontsize=7)
        ax.set(title=m["attribute"], xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return png_data_uri(fig)


def training_curves(model_dir: Path | None) -> str | None:
    """The model directory's training curves: its ``curves.png``, else drawn from ``metrics.jsonl``."""
    if model_dir is None:
        return None
    png = model_dir / "curves.png"
    if png.is_file():
        return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    history = model_dir / "metrics.jsonl"
    if not history.is_file():
        return None
    from personvlm.training.curves import plot_curves, read_metrics

    rows = read_metrics(history)
    if not rows:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "curves.png"
        plot_curves(rows, out)
        return "data:image/png;base64," + base64.b64encode(out.read_bytes()).decode("ascii")


# --- sections ---------------------------------------------------------------------------------
def summary_section(metrics: dict[str, Any]) -> str:
    parts = ["<h2>Headline figures</h2>"]
    attr_rows = [["label-based mA", metrics.get("mA_heads"), metrics.get("mA_caption")]]
    for key in ("accuracy", "precision", "recall", "f1"):
        attr_rows.append([f"instance {key}", metrics.get("instance_heads", {}).get(key),
                          metrics.get("instance_caption", {}).get(key)])
    attr_rows.append(["compact parse rate", None, metrics["parse_rate"]])
    parts.append(_table(["attributes", "from heads", "from parsed compact caption"], attr_rows))
    if "captions" in metrics:
        rows = [["model", *(metrics["captions"][k] for k in METRIC_NAMES)]]
        base = metrics.get("baseline")
        if base:
            rows.append(["baseline: one fixed caption", *(base[k] for k in METRIC_NAMES)])
        parts.append(_table(["natural captions vs references", *METRIC_NAMES], rows, ["", "baseline"]))
        if base:
            parts.append(f"<p class='meta'>Baseline caption (image-blind: the most typical reference, scored on "
                         f"the {base['n']} other images): <q>{html.escape(base['caption'])}</q></p>")
    return "".join(parts)


def attribute_section(metrics: dict[str, Any]) -> str:
    header = ["attribute", "labelled", "heads acc", "coverage", "acc when answering", "abstained",
              "caption acc", "majority-class acc"]
    rows = [[r["name"], r["labelled"], r["accuracy"], r["coverage"], r["selective_accuracy"], r["abstained"],
             r["caption_accuracy"], r["majority_accuracy"]] for r in metrics["per_attribute"]]
    return ("<h2>Per attribute</h2><p class='meta'>Samples whose truth is unknown are not scored; "
            "an <i>unknown</i> answer counts as wrong and lowers coverage.</p>" + _table(header, rows))


def _marks(pred: PersonDescription, truth: PersonDescription | None) -> str:
    if truth is None:
        return ""
    out = []
    for name in NAMES:
        t, p = truth.value(name), pred.value(name)
        if t == UNKNOWN:
            continue
        shown = ", ".join(p) if isinstance(p, tuple) else p
        shown = shown or "none"
        cls = "abst" if p == UNKNOWN else ("ok" if p == t else "bad")
        sign = {"ok": "&#10003;", "bad": "&#10007;", "abst": "?"}[cls]
        tip = "" if cls == "ok" else f' title="truth: {html.escape(str(t))}"'
        out.append(f'<span class="mark {cls}"{tip}>{sign} {html.escape(name)}: {html.escape(shown)}</span>')
    return f"<div class='marks'>{''.join(out)}</div>"


def gallery_section(samples: Sequence[Sample], limit: int) -> str:
    cards = []
    for s in samples[:limit]:
        try:
            src = thumbnail_data_uri(s.image)
        except ImageError as exc:  # the file changed since evaluation: say so instead of a broken image
            cards.append(f"<div class='card'><div class='text'>{html.escape(str(exc))}</div></div>")
            continue
        truth_compact = to_compact(s.truth) if s.truth is not None else "(no labels)"
        text = (f"<div><span class='label'>truth</span> {html.escape(truth_compact)}</div>"
                f"<div><span class='label'>reference</span> {html.escape(s.record.answer)}</div>"
                f"<div><span class='label'>compact</span> {html.escape(s.predicted.caption)}</div>"
                f"<div><span class='label'>natural</span> {html.escape(s.natural)}</div>"
                + _marks(s.predicted, s.truth))
        cards.append(f"<div class='card'><img src='{src}' alt='{html.escape(s.image.name)}'>"
                     f"<div class='text'>{text}</div></div>")
    shown = min(limit, len(samples))
    return (f"<h2>Gallery</h2><p class='meta'>{shown} of {len(samples)} crops; marks compare the heads' "
            f"answer with the truth (&#10003; right, &#10007; wrong, ? abstained).</p>"
            f"<div class='gallery'>{''.join(cards)}</div>")


def render_report(samples: Sequence[Sample], metrics: dict[str, Any], title: str = "PersonVLM evaluation",
                  subtitle: str = "", model_dir: Path | None = None, gallery: int = 48) -> str:
    """The whole report as one HTML string (nothing external is referenced)."""
    plots = []
    if "per_attribute" in metrics:
        plots += [accuracy_plot(metrics), reliability_plot(metrics), confusion_plot(metrics)]
    curves = training_curves(model_dir)
    if curves:
        plots.append(curves)
    body = [f"<h1>{html.escape(title)}</h1><div class='meta'>{html.escape(subtitle)}</div>",
            f"<div class='meta'>model {html.escape(metrics.get('model_version', ''))}; {metrics['n']} crops evaluated, "
            f"{metrics['n_labelled']} with labels, {metrics['skipped']} skipped.</div>",
            summary_section(metrics)]
    if "per_attribute" in metrics:
        body.append(attribute_section(metrics))
    if plots:
        body.append("<h2>Plots</h2><div class='plots'>"
                    + "".join(f"<img src='{p}' alt='plot {i}'><br>" for i, p in enumerate(plots)) + "</div>")
    body.append(gallery_section(samples, gallery))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            "<link rel='icon' href='data:,'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(body) + "</body></html>")


def write_report(path: Path, samples: Sequence[Sample], metrics: dict[str, Any], **kwargs: Any) -> Path:
    """Write ``render_report`` to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(samples, metrics, **kwargs), encoding="utf-8")
    return path
