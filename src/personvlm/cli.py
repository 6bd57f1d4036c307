"""The one ``personvlm`` command. Each feature area owns a Typer sub-app in its own module;
this file only wires them together so ``personvlm --help`` lists everything."""

from __future__ import annotations

import typer

from personvlm.data.cli import app as data_app
from personvlm.demo import demo
from personvlm.describe_cli import bench, describe
from personvlm.evaluation.cli import evaluate
from personvlm.models.cli import app as model_app
from personvlm.serving.cli import app as queue_app
from personvlm.serving.http_cli import bench_http, serve
from personvlm.training.cli import train

app = typer.Typer(
    help="PersonVLM: describe people in surveillance crops (structured attributes + caption).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Synthetic data, MSP60K loading, caption parsing and data checks.")
app.command("train")(train)
app.add_typer(model_app, name="model", help="Inspect model configurations and checkpoints (parameters per component).")
app.command("describe")(describe)
app.command("bench")(bench)
app.command("evaluate")(evaluate)
app.command("demo")(demo)
app.command("serve")(serve)
app.command("bench-http")(bench_http)
app.add_typer(queue_app)  # worker, publish, search, bench-queue (top-level commands)


if __name__ == "__main__":
    app()
