"""``qcflow fit generator``, ``qcflow generate`` and ``qcflow review ...``.

Registered on the main app by ``pipeline.cli``; torch and the generator code
are imported inside the commands, so the CLI starts without them.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from pipeline.console import console, print_table
from pipeline.errors import ConfigError
from pipeline.generation import (
    DEFAULT_DISK_BUDGET_BYTES,
    GenerationRequest,
    generate_defects,
    line_anomaly_scorer,
    load_generator,
    register_generator_dir,
    require_generation_enabled,
)
from pipeline.inspection import open_workspace
from pipeline.review import SyntheticImageRecord, approve, get_synthetic, reject, review_queue

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data folder (default $QCFLOW_HOME)")]
ConfigDir = Annotated[
    Path | None, typer.Option("--config-dir", help="config folder (default $QCFLOW_CONFIG_DIR)")
]
Reviewer = Annotated[
    str,
    typer.Option("--user", envvar="QCFLOW_USER", help="reviewer's user name (default: your login)"),
]
Reason = Annotated[str, typer.Option("--reason", help="why (kept in the audit log)")]

Decision = Callable[[Session, int, str, str], SyntheticImageRecord]
review_app = typer.Typer(help="Review synthetic images: nothing generated is used until approved.")


def fit_generator(
    data: Annotated[Path, typer.Option("--data", help="dataset in MVTec layout, with ground_truth masks")],
    name: Annotated[str, typer.Option("--name", help="generator name to register")],
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=32, help="window px (64; SD: 512)")
    ] = None,
    train_steps: Annotated[int, typer.Option("--train-steps", min=1)] = 1500,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", min=0.1)] = None,
    channels: Annotated[
        str, typer.Option("--channels", help="UNet widths per level, e.g. 64,128,256 (bigger: use a GPU)")
    ] = "16,32,64",
    layers_per_block: Annotated[int, typer.Option("--layers-per-block", min=1, max=4)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=1e-6, max=1e-2)] = 5e-4,
    ema_decay: Annotated[
        float | None,
        typer.Option("--ema-decay", min=0.9, max=0.99999, help="save an EMA of the weights (e.g. 0.999)"),
    ] = None,
    match_class: Annotated[
        bool,
        typer.Option(
            help="generate at the class's measured grey level and contrast by default; the small CPU model "
            "needs it, a larger GPU-fitted one does better without (docs/generators.md)"
        ),
    ] = True,
    device: Annotated[
        str, typer.Option("--device", help="torch device to train on: cpu, cuda, cuda:N")
    ] = "cpu",
    sd_pipeline: Annotated[
        Path | None, typer.Option("--sd-pipeline", help="wrap a LOCAL diffusers inpainting pipeline instead")
    ] = None,
    prompt: Annotated[list[str] | None, typer.Option("--prompt", help="CLASS=TEXT for --sd-pipeline")] = None,
    data_dir: DataDir = None,
) -> None:
    """Fit the mask- and class-conditioned diffusion inpainting generator on DATA's real defects."""
    ws = open_workspace(data_dir)
    with console.status(f"fitting generator {name} on {data}"):
        if sd_pipeline is None:
            unet = {
                "image_size": image_size or 64,
                "block_out_channels": _channels(channels),
                "layers_per_block": layers_per_block,
            }
            fit = {
                "train_steps": train_steps,
                "max_seconds": None if max_minutes is None else max_minutes * 60,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "ema_decay": ema_decay,
                "match_class": match_class,
                "device": device,
            }
            folder = _fit_in_house(data, name, ws.models_root, unet, fit)
        else:
            from generators.sd_inpainting import wrap_local_pipeline

            prompts = dict(p.split("=", 1) for p in prompt or [])
            folder = wrap_local_pipeline(sd_pipeline, data, name, ws.models_root, prompts, image_size or 512)
    record = register_generator_dir(ws, folder)
    training = record.metrics["training"]
    console.print(f"registered generator [cyan]{record.name} {record.version}[/] at {record.path}")
    if "train_steps" in training:
        console.print(
            f"{training['train_steps']} steps in {training['fit_seconds']:.0f}s on "
            f"{training['images_per_class']} real defect images (loss {training['final_loss']:.4f})"
        )


def _channels(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) < 2 or any(w < 8 or w % 8 for w in widths):
        raise ConfigError(f"--channels {text!r}: expected two or more comma-separated multiples of 8")
    return widths


def _fit_in_house(
    data: Path, name: str, models_root: Path, unet: dict[str, Any], fit: dict[str, Any]
) -> Path:
    from generators.diffusion import UNetSettings
    from generators.training.fit_generator import GeneratorFitSettings, fit_generator

    settings = GeneratorFitSettings(unet=UNetSettings(**unet), **fit)
    return fit_generator(data, name, models_root, settings)


def generate(
    line: Annotated[str, typer.Option("--line", help="line id (config/lines/<id>.yaml)")],
    defect_class: Annotated[str, typer.Option("--defect-class", help="a class the generator learned")],
    count: Annotated[int, typer.Option("--count", min=1)],
    seed: Annotated[int, typer.Option("--seed", min=0, help="image i uses seed S+i")] = 0,
    base: Annotated[
        str, typer.Option("--base-images", help="'good' (frames that passed inspection) or a folder")
    ] = "good",
    generator: Annotated[str | None, typer.Option("--generator", help="registered generator name")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1)] = None,
    guidance: Annotated[float | None, typer.Option("--guidance", min=0.0)] = None,
    max_disk_mb: Annotated[float, typer.Option("--max-disk-mb", min=1)] = DEFAULT_DISK_BUDGET_BYTES / 1e6,
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Inpaint COUNT defects of a class into real good frames; each is stored PENDING review."""
    ws = open_workspace(data_dir, config_dir)
    require_generation_enabled(ws.config_dir)
    request = GenerationRequest(
        line, defect_class, count, seed, base, steps, guidance, int(max_disk_mb * 1e6)
    )
    with console.status(f"generating {count} {defect_class} images"):
        ids = generate_defects(ws, request, load_generator(ws, generator), line_anomaly_scorer(ws, line))
    console.print(f"{len(ids)} synthetic images pending review: ids {ids[0]}..{ids[-1]} (qcflow review list)")


@review_app.command("list")
def list_pending(
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50, data_dir: DataDir = None
) -> None:
    """Pending images, best pre-screen first."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        records = review_queue(session, limit=limit)
    table = Table("id", "class", "generator", "seed", "priority", "flags", "created")
    for r in records:
        screen = r.conditioning.get("prescreen", {})
        table.add_row(
            str(r.id),
            r.defect_class,
            f"{r.generator} {r.model_version}",
            str(r.seed),
            f"{screen.get('priority', float('nan')):.2f}",
            "; ".join(screen.get("flags", [])),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    print_table(table)


@review_app.command("show")
def show(image_id: int, data_dir: DataDir = None) -> None:
    """Everything recorded about one image, and where its pixels and mask are."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        r = get_synthetic(session, image_id)
    console.print(
        f"synthetic image {r.id}: [bold]{r.status.value}[/] {r.defect_class} by {r.generator} "
        f"{r.model_version}, seed {r.seed}\nimage {ws.store.path_for(r.sha256)}\n"
        f"mask  {ws.store.path_for(r.mask_sha256)}\nbase image sha256 {r.source_image_sha256}\n"
        f"reviewed by {r.reviewed_by} at {r.reviewed_at}\n{json.dumps(r.conditioning, indent=2)}"
    )


@review_app.command("approve")
def approve_image(image_id: int, reason: Reason, user: Reviewer = "", data_dir: DataDir = None) -> None:
    """Approve a pending image (reviewer or admin role)."""
    _decide(approve, image_id, user, reason, data_dir)


@review_app.command("reject")
def reject_image(image_id: int, reason: Reason, user: Reviewer = "", data_dir: DataDir = None) -> None:
    """Reject a pending image (reviewer or admin role)."""
    _decide(reject, image_id, user, reason, data_dir)


def _decide(decide: Decision, image_id: int, user: str, reason: str, data_dir: Path | None) -> None:
    ws = open_workspace(data_dir)
    with ws.session() as session, session.begin():
        record = decide(session, image_id, user or getpass.getuser(), reason)
    console.print(f"synthetic image {record.id} {record.status.value} by {record.reviewed_by}")


def register_generation_commands(
    app: typer.Typer, fit_app: typer.Typer, reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Add the commands to the qcflow app, each wrapped by ``reports_errors`` (QCError -> exit 2)."""
    fit_app.command("generator")(reports_errors(fit_generator))
    app.command("generate")(reports_errors(generate))
    for command in review_app.registered_commands:
        if command.callback is not None:
            command.callback = reports_errors(command.callback)
    app.add_typer(review_app, name="review")
