"""Distillation: a small, fast student network learns to reproduce a trained teacher, style by style.

``distill`` trains a student (by default the space-to-depth ``fast`` architecture) on random
content crops; each sample draws one of the teacher's styles, the teacher stylises the crop
(no gradients), and the student, with its own vector for that style, is trained to match it
with a pixel loss (mean absolute error). Without a texture term no VGG runs: a step costs the
teacher's forward pass and the student's forward and backward pass, a fraction of a
perceptual-loss step. The pixel loss alone averages what the student cannot place exactly (fine
brush strokes come out smoothed); ``texture_weight`` adds a texture term: the Gram matrices of the
student's output against those of the teacher's output, on the same VGG taps and pyramid
levels as the training's style loss (``losses.PerceptualLoss``), so the student is also asked to
reproduce the teacher's stroke statistics where it cannot reproduce the strokes one by one.

``painting_weight`` adds, for the styles whose painting is given, the Gram distance of the
student's output to the painting itself (the teacher's own style loss, without its content
term): where the student cannot draw the teacher's strokes, it is asked for the painting's
texture rather than the nearest thing to the teacher's (the rain of shower_ohashi). With
``tune_vectors`` it moves only those styles.

With ``settings.tune_vectors`` (a list of style names) the network and every other style's vector
are frozen and only the named styles' vectors train (the student starts from ``base``): a style
still far from its teacher is moved closer without moving any other style, which training the
shared weights for it always does.

Checkpoints, resume, the time limit, SIGTERM and previews come from the shared training loop
(``train_loop.py``); the checkpoint's mode is "distill".
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from stylecast.realtime.errors import UsageError

from .checkpoint import Checkpoint, load_network_source, start_network
from .data import load_style_image
from .losses import PerceptualLoss, StyleTargets, grid_offsets, select_style_targets, stack_style_targets
from .provenance import environment
from .tensors import resolve_device
from .train_loop import Objective, Run, check_out, content_crops, inherit_holdout, loop, restore_optimizer
from .train_settings import StyleSpec, TrainSettings
from .vgg import VGGFeatures, load_vgg, resolve_vgg_path

log = logging.getLogger("stylecast.distill")

DEFAULT_STUDENT = "fast"


def texture_loss(vgg: VGGFeatures, settings: TrainSettings) -> PerceptualLoss:
    """The style part of the training recipe for ``vgg`` (its style taps and pyramid levels),
    unweighted, without content or TV terms: the distillation's texture term."""
    recipe, _ = settings.recipe(vgg)
    return PerceptualLoss(vgg, recipe.replace(content_layers={}, content_weight=0.0, style_weight=1.0, tv_weight=0.0))


GRID_WEIGHT = 20.0
"""Weight of the grid guard that comes with the texture term (see :func:`distill_objective`)."""


def distill_objective(teacher: Checkpoint, texture: PerceptualLoss | None = None, texture_weight: float = 0.0,
                      stride: int = 1, paintings: tuple[StyleTargets, torch.Tensor] | None = None,
                      painting_weight: float = 0.0) -> Objective:
    """Mean absolute difference between student and teacher outputs, plus ``texture_weight``
    times the Gram distance of the student's output to the teacher's (``texture``), plus
    ``painting_weight`` times its Gram distance to the painting of its style, for the samples
    whose style has one: ``paintings`` = (the paintings' Grams from ``texture.style_targets``,
    stacked [P, C, C]; int64 [N] the row of each style, -1 for none). That term is averaged
    over the batch like the others (a sample without a painting adds 0).

    The texture and painting terms reward fine detail, which a space-to-depth student
    (``stride`` > 1) can fake with a pixel-shuffle checkerboard; so with them comes a guard,
    ``GRID_WEIGHT`` times :func:`losses.grid_offsets` of the difference to the teacher (the
    teacher's own pattern is not penalised)."""
    net, vectors = teacher.net, teacher.styles
    use_texture = texture is not None and texture_weight > 0
    use_paintings = texture is not None and paintings is not None and painting_weight > 0

    def objective(x: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, style: torch.Tensor,
                  gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            target = net(x, vectors[idx.to(vectors.device)]).float().clamp(0, 1)
        out = y.float()
        delta = out - target
        diff = delta.abs()
        terms = {"pixel": diff.mean(), "per_sample": diff.mean(dim=(1, 2, 3)).detach()}
        total = terms["pixel"]
        grams = texture.output_grams(out) if use_texture or use_paintings else {}  # one VGG pass for both terms
        if use_texture:
            terms["texture"] = texture.style_distance(grams, texture.style_targets(target)).mean()
            total = total + texture_weight * terms["texture"]
        if use_paintings:
            painted, rows = paintings
            row = rows[idx.to(rows.device)]
            has = row >= 0
            terms["painting"] = out.new_zeros(())
            if bool(has.any()):  # mean over the batch: the samples without a painting add 0
                mine = {key: g[has] for key, g in grams.items()}
                terms["painting"] = texture.style_distance(mine, select_style_targets(painted, row[has])).sum() / len(row)
                total = total + painting_weight * terms["painting"]
        if (use_texture or use_paintings) and stride > 1:
            terms["grid"] = grid_offsets(delta, stride)
            total = total + GRID_WEIGHT * terms["grid"]
        return total, terms

    return objective


def distill(
    teacher_dir: Path | None,
    content_dir: Path | None,
    out: Path,
    settings: TrainSettings,
    *,
    vgg: str | None = None,
    texture_weight: float = 0.0,
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    time_limit: float | None = None,
    base: Path | None = None,
    paintings: dict[str, Path] | None = None,
    painting_weight: float = 0.0,
) -> Path:
    """Distil (or resume distilling) the network of ``teacher_dir`` (a model folder with its PyTorch
    weights, or a checkpoint) into a student of ``settings.arch``; returns the checkpoint ``out``.

    ``base``: a student to start from (a model folder with its PyTorch weights, such as
    ``weights/fast``, or a checkpoint) instead of a fresh network: its architecture and weights,
    and its vectors for the teacher's styles (it must have every one of them).

    ``texture_weight``: the weight of the texture term (see the module's doc; 0 = off). It loads
    the VGG weights of ``vgg`` (a path; None = the NST_VGG environment variable).

    ``paintings``: style name -> its painting, for ``painting_weight`` (the painting term of
    :func:`distill_objective`; both or neither). Every name must be one of the teacher's styles.
    A resumed run keeps its own texture weight, paintings and painting weight."""
    out = Path(out)
    dev = resolve_device(device)
    previous = check_out(out, resume, "distill")
    if previous is not None:
        saved = previous.info
        settings = replace(TrainSettings(**saved["settings"]), steps=settings.steps)
        teacher_dir = teacher_dir or Path(saved["teacher_path"])
        content_dir = content_dir or Path(saved["content_dir"])
        texture_weight = float(saved.get("texture_weight", texture_weight))
        painting_weight = float(saved.get("painting_weight") or 0.0)
        paintings = {n: Path(p) for n, p in (saved.get("paintings") or {}).items()}
    if teacher_dir is None:
        raise UsageError("--teacher MODEL_DIR is needed: the trained model folder to distil")
    if base is not None and previous is not None:
        raise UsageError("--from starts a new distillation; --resume continues one: use one of them")
    if content_dir is None:
        raise UsageError("--content-dir is needed: a folder of photos to learn from")
    paintings = dict(paintings or {})
    if bool(paintings) != (painting_weight > 0):
        raise UsageError("--painting-weight W and --styles (the paintings of the teacher's styles to match) go together")
    texture = texture_loss(load_vgg(resolve_vgg_path(vgg)).to(dev), settings) if texture_weight > 0 or paintings else None
    teacher = load_network_source(teacher_dir)
    teacher.net.requires_grad_(False)
    teacher.net.to(dev).eval()
    teacher.styles = teacher.styles.to(dev)
    names = list(teacher.style_names)
    unknown = sorted(set(paintings) - set(names))
    if unknown:
        raise UsageError(f"--styles: {unknown[0]!r} is not a style of the teacher (its styles: {', '.join(names)}); "
                         "name each painting after the style it is the painting of")
    # The teacher is the target; a painting, where given, is recorded (with its hash) as the style's image.
    specs = [StyleSpec(paintings.get(n, Path(f"teacher-{n}")), 1.0, n) for n in names]
    painting_targets = None
    order = [n for n in names if n in paintings]  # the teacher's order
    if texture is not None and order:
        grams = stack_style_targets([texture.style_targets(load_style_image(paintings[n], settings.style_size).to(dev)) for n in order])
        rows = torch.tensor([order.index(n) if n in paintings else -1 for n in names], device=dev)
        painting_targets = (grams, rows)

    start = load_network_source(base) if base is not None else None
    settings = inherit_holdout(settings, start)
    content = content_crops(content_dir, settings, dev)
    torch.manual_seed(settings.seed)
    if start is not None:
        missing = [n for n in names if n not in start.style_names]
        if missing:
            raise UsageError(f"--from {base}: it has no vector for the teacher's style {missing[0]!r}")
    student = start_network(settings.arch, settings.arch_config, start).to(dev)
    settings = replace(settings, arch=student.arch_name, arch_config=student.config())
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        student = student.to(memory_format=torch.channels_last)
    vectors = torch.nn.Parameter(student.identity_style(len(names)).to(dev))
    if start is not None:
        with torch.no_grad():
            vectors.copy_(torch.stack([start.styles[start.style_names.index(n)] for n in names]).to(dev))
    params: list[torch.Tensor] = [*student.parameters(), vectors]
    if settings.tune_vectors:
        if start is None and previous is None:
            raise UsageError("--tune-vectors needs --from: the trained student whose vectors to tune")
        student.requires_grad_(False)
        tuned = torch.tensor([n in settings.tune_vectors for n in names], device=dev)[:, None]
        vectors.register_hook(lambda grad: grad * tuned)  # the other rows never move (Adam's moments stay 0)
        params = [vectors]
    opt = torch.optim.Adam(params, lr=settings.lr)
    run = Run(student, torch.zeros(0, student.style_dim), vectors, names, specs, opt, 0, {})
    if previous is not None:
        student.load_state_dict(previous.net.state_dict())
        with torch.no_grad():
            vectors.copy_(previous.styles)
        restore_optimizer(opt, previous.extra)
        run.step, run.info = previous.step, dict(previous.info)
        log.info("resuming at step %d of %d", run.step, settings.steps)
    else:
        run.info = {
            "mode": "distill",
            "teacher": Path(teacher_dir).name,
            "teacher_path": str(Path(teacher_dir).resolve()),
            "teacher_architecture": teacher.net.arch_name,
            "texture_weight": texture_weight,
            "painting_weight": painting_weight,
            "paintings": {n: str(Path(p).resolve()) for n, p in paintings.items()},
            "started_from": Path(base).name if base is not None else None,
            "content_dir": str(Path(content_dir).resolve()),
            "content_photos": len(content),
            "held_out_photos": content.held_out_names,
            "environment": environment(),
        }
    log.info("distilling %s (%s, %d styles) into a %s network %s", teacher_dir, teacher.net.arch_name, len(names),
             student.arch_name, student.config())
    recipe = f"distillation from {Path(teacher_dir).name}: pixel L1"
    if texture is not None:
        recipe += f" + {texture_weight:g} x texture (Gram distance to the teacher's output: {texture.recipe.describe()})"
    if painting_targets is not None:
        recipe += f" + {painting_weight:g} x painting (Gram distance to the painting of {', '.join(order)})"
    if settings.tune_vectors:
        recipe += f"; only the vectors of {', '.join(settings.tune_vectors)} train"
    objective = distill_objective(teacher, texture, texture_weight, student.stride, painting_targets, painting_weight)
    return loop(run, out=out, settings=settings, content=content, objective=objective,
                style_images=[None] * len(names), device=dev, progress=progress, recipe_desc=recipe, time_limit=time_limit)
