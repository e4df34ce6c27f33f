"""The ``looksync`` command line: sample data, ingestion, index builds, the service, look search."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click

from looksync.search.heads_recipe import (
    RECIPE_FIXED_LOOKS,
    RECIPE_GENDER_LOOKS,
    RECIPE_LOOKS,
    RECIPE_NET_LOOKS,
    RECIPE_SEED,
    RECIPE_SIZE,
    RECIPE_VARIED_LOOKS,
)
from looksync.settings import SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _settings(**overrides):
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if os.environ.get("AIRFLOW_CONN_LOOKSYNC_S3"):
        # the object stores use the looksync_s3 connection's clients from the CLI too (as in a task)
        from looksync.airflow.connections import ConnectionConfigError, hand_down_s3_clients

        try:
            hand_down_s3_clients()
        except ConnectionConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return settings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """LookSync: make AI-generated fashion looks shoppable."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # faiss probes for its AVX512 and AVX2 builds on import and logs each miss at INFO with the
    # ModuleNotFoundError ("Could not load library with AVX2 support due to: ...") before loading the
    # generic build that works: it reads like a failure on every command that touches the index
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


@main.group()
def sample() -> None:
    """Generate and serve the sample catalog (feeds, product images, looks with ground truth)."""


@sample.command("generate")
@click.option("--out", type=click.Path(path_type=Path), default=Path("var/sample"), show_default=True)
@click.option("--size", type=int, default=300, show_default=True, help="Valid products across the three vendors.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--fault-rate", type=float, default=0.0, show_default=True, help="Share of extra broken rows.")
@click.option("--looks", "n_looks", type=int, default=12, show_default=True)
@click.option("--varied-looks", "n_varied_looks", type=int, default=0, show_default=True,
              help="Also looks in varied framings (pose, crop, aspect, scale, position, mirror, background, style).")
@click.option("--varied-split", type=click.Choice(["heldout", "train"]), default="heldout", show_default=True,
              help="train never draws the held-out pose family, aspect and figure style.")
@click.option("--cross-listing-rate", type=float, default=0.1, show_default=True,
              help="Share of items also listed by one or two other vendors (other words, market, re-encoded picture; "
                   "recorded in groups.json, scored by `looksync eval`).")  # fmt: skip
@click.option("--image-base-url", default="http://127.0.0.1:8765", show_default=True)
@click.option("--model", default="LookSync-Tiny", show_default=True, help="Architecture of the random-weight checkpoint.")
def sample_generate(out: Path, size: int, seed: int, fault_rate: float, n_looks: int, n_varied_looks: int,
                    varied_split: str, cross_listing_rate: float, image_base_url: str, model: str):  # fmt: skip
    """Write the sample catalog and a random-weight CLIP checkpoint under OUT."""
    from embeddings import save_random_checkpoint
    from looksync.sample import generate_sample

    manifest = generate_sample(
        out, size=size, seed=seed, fault_rate=fault_rate, image_base_url=image_base_url, n_looks=n_looks,
        n_varied_looks=n_varied_looks, varied_split=varied_split, cross_listing_rate=cross_listing_rate,
    )
    checkpoint = save_random_checkpoint(model, out / "models" / f"{model}-random-{seed}.pt", seed=seed)
    click.echo(
        f"sample written to {out}: products {manifest.product_counts}, planted faults {manifest.fault_counts}, "
        f"{manifest.look_count} looks, cross-listings {manifest.cross_listings}; checkpoint {checkpoint}"
    )


@sample.command("serve")
@click.option("--root", type=click.Path(path_type=Path, exists=True), default=Path("var/sample"), show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
def sample_serve(root: Path, port: int):
    """Serve the sample's images over HTTP on 127.0.0.1 (what ingestion fetches)."""
    from looksync.sample.server import serve_sample

    server = serve_sample(root, port=port)
    click.echo(f"serving {root} at {server.url} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()


@main.command()
@click.option("--vendor", required=True, help="Vendor config name (see `looksync vendors`).")
@click.option("--feed", required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--run-id", default=None)
@click.option("--refetch", is_flag=True,
              help="Fetch every image again, even when its URL is unchanged (finds images replaced at the same URL; "
                   "stores missing thumbnails). Stored vectors are still reused for unchanged images.")  # fmt: skip
@click.option("--confirm-deletions", is_flag=True,
              help="Delete vanished products even when the run would otherwise hold its deletions (unreadable rows "
                   "without a SKU, or more vanished than ingest_delete_max_share); see docs/vendors.md.")  # fmt: skip
@click.option("--no-index", is_flag=True,
              help="Write the stores only; leave the live index as it is (until `looksync index build`).")
def ingest(vendor: str, feed: Path, run_id: str | None, refetch: bool, confirm_deletions: bool, no_index: bool):
    """Ingest one vendor feed: parse, validate, quarantine, fetch images (and their thumbnails), embed, store,
    and apply the changes to the live index and the Redis attribute mirror, as the catalog_ingest DAG does."""
    from embeddings import load_encoder_from_settings
    from looksync.airflow.connections import attribute_mirror
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed

    settings = _settings()
    index = None if no_index else open_index(settings)
    report = ingest_feed(settings, vendor, feed, load_encoder_from_settings(settings), run_id=run_id, refetch=refetch,
                         confirm_deletions=confirm_deletions, index=index, mirror=attribute_mirror(settings))  # fmt: skip
    click.echo(json.dumps(report.__dict__, indent=2, default=str))


@main.command()
def vendors():
    """List the packaged vendor configurations."""
    from looksync.catalog.vendors import list_vendors

    for name in list_vendors():
        click.echo(name)


@main.group()
def index() -> None:
    """Build and inspect index versions."""


@index.command("build")
@click.option("--keep", type=int, default=3, show_default=True, help="Index versions to keep.")
def index_build(keep: int):
    """Build a new index version from the stores for the configured model and make it live."""
    from embeddings import load_encoder_from_settings
    from looksync.index.factory import open_index
    from looksync.pipelines.reindex import build_index

    settings = _settings()
    model_id = load_encoder_from_settings(settings).model_id
    report = build_index(settings, open_index(settings), model_id, keep=keep)
    click.echo(json.dumps(report.__dict__, indent=2, default=str))


@index.command("versions")
def index_versions():
    """List index versions: the live one (marked *), the shadow one and the previous one (a rollback's target)."""
    settings = _settings()
    from looksync.index.factory import open_index

    index = open_index(settings)
    previous = index.previous_version()
    for info in index.list_versions():
        mark = "live" if info.live else "shadow" if info.shadow else "previous" if previous and info.name == previous.name else ""
        click.echo(f"{'*' if info.live else ' '} {info.name}  model={info.model_id}  dim={info.dim}  count={info.count}  {mark}".rstrip())


@index.command("promote")
def index_promote():
    """Make the shadow index version live (one atomic swap); the old live version becomes the rollback target."""
    from looksync.index.errors import IndexBackendError
    from looksync.index.factory import open_index

    try:
        was, now = open_index(_settings()).promote_shadow()
    except IndexBackendError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"live version: {now} (was {was})")


@index.command("rollback")
@click.option(
    "--allow-model-change",
    is_flag=True,
    help="Roll back even when the previous version holds another model's vectors (the service must load that model).",
)
def index_rollback(allow_model_change: bool):
    """Make the previous index version live again (one atomic swap). Cached results follow: cache keys
    carry the index version."""
    from looksync.index.errors import IndexBackendError
    from looksync.index.factory import open_index

    try:
        was, now = open_index(_settings()).rollback(allow_model_change=allow_model_change)
    except IndexBackendError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"live version: {now} (was {was})")


@index.command("register-repository")
@click.option("--wait-s", type=float, default=0.0, show_default=True,
              help="First wait this long for the cluster to be ready (yellow), e.g. while a container starts.")  # fmt: skip
@click.option("--verify/--no-verify", default=True, show_default=True, help="Let Elasticsearch verify the repository.")
def index_register_repository(wait_s: float, verify: bool):
    """Register the Elasticsearch snapshot repository (s3: LOOKSYNC_S3_BUCKET, LOOKSYNC_ES_SNAPSHOT_S3_CLIENT)."""
    from looksync.index.base import IndexBackendError
    from looksync.index.elasticsearch import ElasticsearchIndex

    settings = _settings()
    if settings.resolved_index_backend != "elasticsearch":
        raise click.ClickException("register-repository needs the Elasticsearch backend: set LOOKSYNC_ES_URL")
    try:
        index = ElasticsearchIndex.from_settings(settings)
        if wait_s > 0:
            health = index.wait_for_cluster(wait_s)
            click.echo(f"cluster {health.get('cluster_name')} is {health.get('status')}")
        body = index.register_snapshot_repository(verify=verify)
    except IndexBackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"snapshot repository {index.snapshot_repository} registered: {json.dumps(body, sort_keys=True)}")


@main.command()
@click.option("--port", type=int, default=None)
def serve(port: int | None):
    """Run the HTTP service under gunicorn (infra/gunicorn.conf.py)."""
    from embeddings import EmbeddingsError
    from embeddings.factory import resolve_weights_from_settings

    settings = _settings()  # fail fast on bad configuration, before gunicorn forks
    try:
        # weights that cannot be had offline fail here in one line; a download happens once, here, rather
        # than in each worker under gunicorn's boot timeout
        resolve_weights_from_settings(settings)
        if settings.clip_runtime != "torch":
            # the ONNX towers exported, quantised and gated once, here: each worker then only loads the files
            from embeddings import load_encoder_from_settings

            load_encoder_from_settings(settings)
    except EmbeddingsError as exc:
        raise click.ClickException(str(exc)) from None
    if port:
        os.environ["LOOKSYNC_PORT"] = str(port)
    conf = REPO_ROOT / "infra" / "gunicorn.conf.py"
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(conf), "--chdir", str(REPO_ROOT)])


@main.group()
def look() -> None:
    """Send looks to a running service."""


@look.command("search")
@click.argument("image", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--market", default=None)
@click.option("--gender", default=None)
@click.option("--layers", default=None, help="Comma-separated layers (default: detected).")
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
def look_search(image: Path, url: str, market, gender, layers, k: int, as_json: bool):
    """POST a look image to the service and print the products found per layer."""
    from looksync.client import format_look_response, search_look

    response = search_look(url, image, market=market, gender=gender, layers=layers, k=k)
    click.echo(json.dumps(response, indent=2, ensure_ascii=False) if as_json else format_look_response(response))


@main.command()
@click.option("--sample", "sample_root", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write (.pt).")
@click.option("--model", default="LookSync-Tiny", show_default=True)
@click.option("--init-weights", default="random:0", show_default=True, help="Any weights source the embeddings package supports.")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--on-figure/--no-on-figure", default=True, show_default=True,
              help="Also train on-figure crops (garments pasted on a mannequin at their layer slot) against captions and packshots.")  # fmt: skip
@click.option("--figure-variety/--no-figure-variety", default=False, show_default=True,
              help="Frame the on-figure looks like varied looks (background, mirror, turn, small figure; loose crops).")
def finetune(
    sample_root: Path, out: Path, model: str, init_weights: str, epochs: int, batch_size: int, seed: int, on_figure: bool,
    figure_variety: bool,
):  # fmt: skip
    """Contrastively fine-tune CLIP on a sample catalog's (image, caption) pairs; writes a checkpoint and a report."""
    from looksync.quality.finetune import FinetuneConfig, sample_pairs
    from looksync.quality.finetune import finetune as run_finetune

    config = FinetuneConfig(
        model=model, init_weights=init_weights, epochs=epochs, batch_size=batch_size, seed=seed, on_figure=on_figure,
        figure_variety=figure_variety,
    )
    report = run_finetune(sample_pairs(sample_root), config, out)
    click.echo(json.dumps(report.__dict__, indent=2, default=str))


@main.group()
def heads() -> None:
    """Detection heads for look searches without hints (layer presence and gender from the regions)."""


@heads.command("train")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Heads file to write (.npz).")
@click.option("--train-dir", type=click.Path(path_type=Path), default=Path("var/heads-train"), show_default=True,
              help="Where the training looks are generated (their own catalog; replaced).")
@click.option("--size", type=int, default=RECIPE_SIZE, show_default=True, help="Products of the training catalog.")
@click.option("--seed", type=int, default=RECIPE_SEED, show_default=True)
@click.option("--fixed-looks", type=int, default=RECIPE_FIXED_LOOKS, show_default=True)
@click.option("--varied-looks", type=int, default=RECIPE_VARIED_LOOKS, show_default=True, help="Looks of the train framing split.")
@click.option("--gender-looks", type=int, default=RECIPE_GENDER_LOOKS, show_default=True,
              help="Looks of a second sample (seed + 101) that train the gender head alone (0: none).")  # fmt: skip
@click.option("--net-looks", type=int, default=RECIPE_NET_LOOKS, show_default=True,
              help="Looks of a third sample (seed + 303) that train the presence and gender CNNs (0: none, format-4 heads).")  # fmt: skip
def heads_train(out: Path, train_dir: Path, size: int, seed: int, fixed_looks: int, varied_looks: int, gender_looks: int,
                net_looks: int):  # fmt: skip
    """Train detection heads for the configured CLIP model and region finder (LOOKSYNC_REGION_FINDER)."""
    from embeddings import EmbeddingsError, load_encoder
    from looksync.search.detection import DetectionHeadsError
    from looksync.search.detection_training import train_from_sample
    from looksync.search.pose.models import PoseModelError

    settings = _settings()
    try:
        encoder = load_encoder(settings.clip_model, settings.clip_weights, device=settings.device)
        trained = train_from_sample(settings, encoder, train_dir, size=size, seed=seed, fixed_looks=fixed_looks,
                                    varied_looks=varied_looks, gender_looks=gender_looks, net_looks=net_looks,
                                    echo=click.echo)  # fmt: skip
    except (EmbeddingsError, DetectionHeadsError, PoseModelError) as exc:
        raise click.ClickException(str(exc)) from None
    trained.save(out)
    click.echo(f"heads for {trained.model_id} on {trained.region_finder} regions written to {out}: "
               f"{json.dumps(trained.meta.get('validation', {}))}")  # fmt: skip


@main.command("replay-preferences")
@click.option("--shoppers", type=int, default=100, show_default=True, help="Synthetic shoppers with planted tastes.")
@click.option("--train-sessions", type=int, default=8, show_default=True)
@click.option("--test-sessions", type=int, default=4, show_default=True, help="Held-out sessions per shopper.")
@click.option("--market", "markets", multiple=True, help="Markets to draw shoppers in (default: every market).")
@click.option("--max-boost", type=float, default=None, help="The boost cap (default: LOOKSYNC_SHOPPER_MAX_BOOST).")
@click.option("--seed", type=int, default=0, show_default=True)
def replay_preferences(shoppers: int, train_sessions: int, test_sessions: int, markets: tuple[str, ...],
                       max_boost: float | None, seed: int):  # fmt: skip
    """Offline replay of shopper preferences on the live index: held-out purchase rank with and without
    the profile learned from earlier sessions, with bootstrap intervals (JSON on stdout)."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.index.factory import open_index
    from looksync.quality.evaluation.replay import ReplayOptions, run_replay

    settings = _settings()
    options = ReplayOptions(shoppers=shoppers, train_sessions=train_sessions, test_sessions=test_sessions, seed=seed,
                            max_boost=settings.shopper_max_boost if max_boost is None else max_boost)  # fmt: skip
    try:
        summary = run_replay(open_index(settings), list(markets or get_taxonomy().markets), options, echo=click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, indent=2))


@main.command("eval")
@click.option("--sample", "sample_root", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--config", "config_specs", multiple=True, required=True,
              help="NAME=MODEL:WEIGHTS[,rerank=MODE][,generator=local|llm][,regions=FINDER|truth][,crop_weight=W][,runtime=torch|onnx|onnx-int8]; "
                   "repeat (the first is the baseline). regions=truth: layers at their ground-truth boxes (hinted tasks only).")
@click.option("--run-id", default=None)
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--max-text-products", type=int, default=300, show_default=True)
@click.option("--max-similar", type=int, default=200, show_default=True)
@click.option("--resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples per interval.")
@click.option("--nohint/--no-nohint", default=True, show_default=True,
              help="Also search every look with only its market given (look_nohint) and score detection.")
def eval_command(sample_root: Path, config_specs: tuple[str, ...], run_id: str | None, k: int,
                 max_text_products: int, max_similar: int, resamples: int, nohint: bool):  # fmt: skip
    """Offline match quality of configurations on a sample: JSON + HTML under <data_dir>/eval/<run_id>/."""
    from looksync.quality.evaluation import EvalConfig, EvalError, EvalOptions, run_eval

    settings = _settings()
    try:
        configs = [EvalConfig.parse(spec) for spec in config_specs]
        options = EvalOptions(k=k, max_text_products=max_text_products, max_similar_queries=max_similar,
                              n_resamples=resamples, nohint=nohint)  # fmt: skip
        run = run_eval(sample_root, configs, settings.data_dir, options, run_id=run_id, base_settings=settings,
                       echo=click.echo)  # fmt: skip
    except EvalError as exc:
        raise click.ClickException(str(exc)) from None
    for slug, g in run.summary["grouping"].items():
        if slug == "skipped":
            click.echo(f"grouping: skipped ({g})")
            continue
        click.echo(f"grouping ({slug}): pairwise precision {g['precision']:.4f}, recall {g['recall']:.4f} "
                   f"({g['grouped_pairs']} grouped pairs, {g['true_pairs']} true pairs, {g['products']} products)")  # fmt: skip
    for name, c in run.summary["configs"].items():
        for task in ("look", "look_visible", "look_nohint", "look_nohint_visible"):
            if task in c["metrics"]:
                figures = ", ".join(f"{layer} {v['recall@10']['mean']:.2f}" for layer, v in c["metrics"][task].items())
                click.echo(f"{name} ({c['model_id']}): {task} Recall@10 {figures}")
        for task, keys in c.get("framing", {}).items():
            if task in ("look_visible", "look_nohint_visible"):
                continue
            for key in ("variant", "aspect", "crop", "mirrored", "pose"):
                figures = ", ".join(f"{value} {v['recall@10']:.2f} ({v['queries']})" for value, v in keys.get(key, {}).items())
                click.echo(f"{name}: {task} Recall@10 by {key}: {figures}")
        for task, why in c.get("skipped", {}).items():
            click.echo(f"{name}: {task} skipped ({why})")
        if "detection" in c:
            d = c["detection"]["all"]
            click.echo(f"{name}: no-hint detection over {d['looks']} looks: gender accuracy {d['gender_accuracy']} "
                       f"(filtered on {d.get('gender_used_share')} of looks, right there {d.get('gender_used_accuracy')}), "
                       f"presence precision {d['presence']['precision']} recall {d['presence']['recall']}; "
                       f"over garments at least half in view {d['presence_visible']['precision']} / "
                       f"{d['presence_visible']['recall']}")  # fmt: skip
            for value, v in c["detection"].get("variant", {}).items():
                click.echo(f"{name}:   {value} looks: gender {v['gender_accuracy']}, presence precision "
                           f"{v['presence']['precision']} recall {v['presence']['recall']}")  # fmt: skip
    for label, variants in run.summary.get("comparisons_by_variant", {}).items():
        for variant, tasks in variants.items():
            for task in ("look", "look_visible", "look_nohint"):
                entry = tasks.get(task, {}).get("all", {}).get("recall@10")
                if entry:
                    click.echo(f"{label} on {variant} looks: {task} Recall@10 {entry['difference']:+.3f} "
                               f"[{entry['ci_low']:+.3f}, {entry['ci_high']:+.3f}]")  # fmt: skip
    click.echo(f"written {run.json_path} and {run.html_path}")


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("var/demo"), show_default=True)
@click.option("--size", type=int, default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--fault-rate", type=float, default=0.03, show_default=True)
@click.option("--epochs", type=click.IntRange(min=0), default=30, show_default=True,
              help="Fine-tuning epochs on the sample before indexing; 0 serves random weights (plumbing only).")
@click.option("--looks", type=click.IntRange(min=1), default=160, show_default=True,
              help="Sample looks: the first is searched without hints.")
@click.option("--heads-looks", type=click.IntRange(min=10), default=RECIPE_LOOKS, show_default=True,
              help="Looks the detection heads are trained on, generated with their own catalog as `looksync heads train` does.")
def demo(workdir: Path, size: int, seed: int, fault_rate: float, epochs: int, looks: int, heads_looks: int):
    """The main job end to end on embedded defaults: sample -> fine-tune -> ingest -> index -> serve -> search a look.

    The terminal shows the steps and the results; the full log goes to WORKDIR/demo.log."""
    from looksync.demo import run_demo

    bars = click.get_text_stream("stdout").isatty()  # elsewhere (CI, pipes) a line per step instead
    run_demo(workdir, size=size, seed=seed, fault_rate=fault_rate, epochs=epochs, echo=click.echo, bars=bars,
             looks=looks, heads_looks=heads_looks)


@main.command()
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None, help="Also write the chart page here.")
def coverage(html_out: Path | None):
    """Products per market x layer and missing-attribute rates, from the Redis attribute mirror."""
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.catalog.attribute_mirror import coverage as compute

    settings = _settings()
    mirror = AttributeMirror.from_settings(settings)
    if mirror is None:
        raise click.ClickException("no Redis configured: set LOOKSYNC_ATTRIBUTES_REDIS_URL or LOOKSYNC_REDIS_URL")
    figures = compute(mirror)
    click.echo(figures.format_table())
    if html_out:
        from looksync.pipelines.run_report import coverage_svg

        html_out.write_text(f"<!doctype html><html><body><h1>LookSync coverage</h1>{coverage_svg(figures)}</body></html>")
        click.echo(f"chart written to {html_out}")


@main.group()
def models() -> None:
    """Model files besides CLIP: BlazePose's, for the pose region finder."""


@models.command("fetch")
@click.option("--force", is_flag=True, help="Fetch again even when cached (the pypi source).")
def models_fetch(force: bool):
    """Fetch the pose model files from LOOKSYNC_POSE_MODELS, check their sha256, and cache them.

    The service also fetches them at its first start with LOOKSYNC_REGION_FINDER=pose; run this when
    building an image or to replace a damaged cached file."""
    from looksync.search.pose.models import PoseModelError, resolve_pose_models

    settings = _settings()
    try:
        paths = resolve_pose_models(settings.pose_models, settings.pose_models_dir, force=force,
                                    s3_endpoint_url=settings.s3_endpoint_url, s3_region=settings.s3_region)  # fmt: skip
    except PoseModelError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"source": settings.pose_models, **{k: str(v) for k, v in paths.__dict__.items()}}, indent=2))


@main.group()
def queue() -> None:
    """The vendor-update queue (Redis stream) that starts catalog_ingest runs."""


@queue.command("publish")
@click.option("--vendor", required=True)
@click.option("--feed", required=True, help="Absolute path, file:// or s3:// URI of the feed.")
@click.option("--mode", type=click.Choice(["full", "delta"]), default="full", show_default=True)
def queue_publish(vendor: str, feed: str, mode: str):
    """Publish one vendor update message."""
    from looksync.pipelines.vendor_queue import MalformedMessage, VendorUpdateQueue

    try:
        message_id = VendorUpdateQueue.from_settings(_settings()).publish(vendor, feed, mode)
    except (MalformedMessage, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(message_id)


@queue.command("dead-letters")
def queue_dead_letters():
    """Print the malformed messages with their reasons."""
    from looksync.pipelines.vendor_queue import VendorUpdateQueue

    for entry in VendorUpdateQueue.from_settings(_settings()).dead_letters():
        click.echo(json.dumps(entry, ensure_ascii=False))


@main.group()
def airflow() -> None:
    """Airflow setup for the LookSync DAGs (pools) and where their connections come from."""


@airflow.command("setup")
@click.option("--embedding-slots", type=int, default=2, show_default=True, help="Concurrent CLIP embedding tasks.")
@click.option("--api-url", default=None, help="A running API server (http://127.0.0.1:8080); default: the local airflow command.")
@click.option("--username", default="admin", show_default=True, help="API login (with --api-url).")
@click.option("--password", envvar="AIRFLOW_API_PASSWORD", default=None, help="API password (or AIRFLOW_API_PASSWORD).")
def airflow_setup(embedding_slots: int, api_url: str | None, username: str, password: str | None):
    """Create or update the pools the DAGs use (idempotent: run it after every deploy)."""
    from looksync.airflow.pools import AirflowSetupError, api_token, ensure_pools_api, ensure_pools_cli, pool_specs

    try:
        specs = pool_specs(embedding_slots)
        if api_url:
            token = api_token(api_url, username, password) if password else None
            done = ensure_pools_api(api_url, token, specs)
        else:
            done = ensure_pools_cli(specs)
    except (AirflowSetupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for pool in done:
        click.echo(f"pool {pool['name']}: {pool['slots']} slots ({pool['action']})")


@airflow.command("connections")
def airflow_connections():
    """Where each service's configuration comes from: an Airflow connection, the settings, or off."""
    from looksync.airflow.connections import ConnectionConfigError, describe

    try:
        for service, source in describe(_settings()).items():
            click.echo(f"{service}: {source}")
    except ConnectionConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def judge() -> None:
    """Human judging of match quality (ratings from the /judge page)."""


@judge.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None, help="Also write the HTML report here.")
def judge_report(as_json: bool, html_out: Path | None):
    """Mean opinion score per model and criterion (± 95% CI) and inter-judge agreement."""
    from looksync.quality.judging import JudgingStoreError, RatingStore, build_report, format_table, render_html

    try:
        store = RatingStore.from_settings(_settings())
        report = build_report(store.ratings())
        store.close()
    except JudgingStoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_table(report))
    if html_out:
        html_out.write_text(render_html(report), encoding="utf-8")
        if not as_json:
            click.echo(f"written {html_out}")


@main.command()
@click.option("--products", type=int, required=True, help="Products in the index.")
@click.option("--model", default="ViT-H-14", show_default=True, help="CLIP model whose measured costs apply (ViT-H-14, ViT-B-32).")
@click.option("--dims", type=int, default=None, help="Vector dimensions (default: the model's).")
@click.option("--quantisation", type=click.Choice(["float", "int8", "int4", "bbq"]), default="int8", show_default=True)
@click.option("--looks-per-day", type=float, default=350_000, show_default=True)
@click.option("--peak-factor", type=float, default=3.0, show_default=True, help="Peak-hour rate over the mean rate.")
@click.option("--layers", "layers_per_look", type=int, default=5, show_default=True, help="kNN queries (layers) per look.")
@click.option("--replicas", type=int, default=1, show_default=True)
@click.option("--m", "hnsw_m", type=int, default=16, show_default=True, help="HNSW links per node (LOOKSYNC_ES_HNSW_M).")
@click.option("--node-ram-gib", type=float, default=64.0, show_default=True)
@click.option("--node-cores", type=int, default=16, show_default=True)
@click.option("--heap-gib", type=float, default=None, help="Elasticsearch heap per node (default: min(31, RAM/2)).")
@click.option("--crops-per-look", type=int, default=None, help="Image forwards per look (default: layers + 1).")
@click.option("--texts-per-look", type=int, default=None, help="Text forwards per look (default: one per layer).")
@click.option("--engine-overhead", type=float, default=3.0, show_default=True,
              help="Elasticsearch kNN cost over the measured FAISS query (an assumption).")  # fmt: skip
@click.option("--reembed-hours", type=float, default=24.0, show_default=True, help="Window for a full re-embedding.")
@click.option("--gpu-images-per-s", type=float, default=None, help="Measured GPU images/s of the model (none measured here).")
@click.option("--gpu-texts-per-s", type=float, default=None, help="Measured GPU texts/s (default: the images/s).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def capacity(products: int, model: str, dims: int | None, as_json: bool, **options):
    """Elasticsearch nodes, memory and shards, kNN QPS, CLIP cores/GPUs, Redis and S3 sizes for a catalog
    and a look rate, from measured per-item costs (docs/capacity.md)."""
    from looksync.capacity import MODELS, CapacityInputs, plan, render, to_json

    if model not in MODELS:
        raise click.BadParameter(f"no measured costs for {model!r}; known: {', '.join(sorted(MODELS))}", param_hint="--model")
    try:
        result = plan(CapacityInputs(products=products, model=model, dims=dims or MODELS[model].dims, **options))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(to_json(result) if as_json else render(result))


if __name__ == "__main__":
    main()
