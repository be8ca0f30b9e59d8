"""``outpool annotate``: people in the loop. Serve the annotation page, hand out tokens, ask
people about a dataset's pairs, and move batches to and from Label Studio and MTurk."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.aggregate import AGGREGATORS, aggregate
from outpool.annotate.apply import accepted_pairs
from outpool.annotate.protocol import STATUSES, LabelResult
from outpool.data import Dataset, PairTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.fileio import json_text
from outpool.service.batch import BatchSpec
from outpool.service.exchange import (
    export_label_studio,
    export_mturk,
    export_vote_records,
    import_label_studio,
    import_mturk,
)
from outpool.service.people import ADMIN_TOKEN_ENV, PeopleAnnotator, PeopleConfig, ServiceClient
from outpool.service.store import AnnotationStore

TOKEN_ENV = ADMIN_TOKEN_ENV
EXPORTS = {"label-studio": export_label_studio, "mturk": export_mturk}
IMPORTS = {"label-studio": import_label_studio, "mturk": import_mturk}


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args: argparse.Namespace) -> int:
    from outpool.service.server import serve

    if args.host not in LOCAL_HOSTS and not args.behind_tls_proxy:
        # tokens travel in every request: over plain HTTP anyone on the path can read them
        raise ConfigError(
            f"--host {args.host} would serve tokens over plain HTTP to the network; listen on "
            "127.0.0.1 behind a TLS reverse proxy (see the guide), or pass --behind-tls-proxy "
            "when a TLS proxy on another host forwards to this address"
        )
    serve(args.db, host=args.host, port=args.port, public_url=args.public_url)
    return 0


def parse_duration(text: str) -> float:
    """``30m``, ``12h``, ``7d`` (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a duration is like 30m, 12h or 7d, got {text!r}"
        ) from None
    if not 0 < seconds < 1e9:
        raise argparse.ArgumentTypeError(f"a duration must be positive, got {text!r}")
    return seconds


def cmd_token(args: argparse.Namespace) -> int:
    store = AnnotationStore.open(args.db)
    try:
        role = "admin" if args.admin else "annotator"
        who, token = store.create_annotator(args.name, role=role, expires_in_s=args.expires_in)
        store.record("cli", f"create {who.role}", who.id)
    finally:
        store.close()
    out: dict[str, Any] = {"annotator": who.id, "name": who.name, "role": who.role, "token": token}
    out["expires_at"] = who.expires_at
    if args.public_url and not args.admin:
        out["link"] = f"{args.public_url.rstrip('/')}/a/{token}"
    print(json_text(out))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = AnnotationStore.open(args.db)
    try:
        who = store.revoke(args.annotator)
        store.record("cli", "revoke", who.id)
    finally:
        store.close()
    print(json_text({"annotator": who.id, "name": who.name, "role": who.role, "revoked": True}))
    return 0


def _people(args: argparse.Namespace, definitions: Mapping[str, str]) -> PeopleAnnotator:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"set {TOKEN_ENV} to an admin token of the annotation service")
    cfg = PeopleConfig(
        server=args.server,
        admin_token=token,
        k=args.k,
        new_annotators=args.new_annotators,
        wait=args.wait,
        poll_s=args.poll_s,
        timeout_s=args.timeout_s,
        method=args.method,
        min_agreement=args.min_agreement,
        min_check_accuracy=args.min_check_accuracy,
    )
    return PeopleAnnotator(cfg, definitions=definitions)


def _pairs(dataset: Dataset, name_or_csv: str, where: Path) -> PairTable:
    """A dataset's pair table by name, or a pair CSV file whose images are in the dataset."""
    if name_or_csv in dataset.pairs:
        return dataset.pairs[name_or_csv]
    path = Path(name_or_csv)
    if path.suffix == ".csv" and path.exists():
        return PairTable.load(
            path, attributes=dataset.attribute_names, image_ids=dataset.image_ids().tolist()
        )
    raise UnknownNameError("pair table (or .csv file)", name_or_csv, dataset.pairs)


def status_counts(result: LabelResult) -> dict[str, int]:
    """How many pairs ended in each status; a pair nobody answered is "unanswered" (the
    aggregators prune it), and one still open while people label is "pairs_pending"."""
    answered = np.isin(result.pair_ids, result.votes.pair_id)
    counts = {s: int((result.status == s).sum()) for s in STATUSES}
    unanswered = int(((result.status == "pruned") & ~answered).sum())
    counts["pruned"] -= unanswered
    # "pending" already says whether the batch is; the pairs without a final answer yet:
    return {("pairs_pending" if s == "pending" else s): n for s, n in counts.items()} | {
        "unanswered": unanswered
    }


def cmd_request(args: argparse.Namespace) -> int:
    dataset = Dataset.load(args.dataset)
    pairs = _pairs(dataset, args.pairs, args.dataset)
    check = _pairs(dataset, args.check, args.dataset) if args.check else None
    examples = _pairs(dataset, args.examples, args.dataset) if args.examples else None
    name = args.batch or f"{dataset.name}-{Path(args.pairs).stem}"
    spec = BatchSpec.from_pairs(name, dataset, pairs, check=check, examples=examples)
    people = _people(args, spec.definitions)
    result = people.label_batch(spec)
    out_name = args.name or f"{Path(args.pairs).stem}_people"
    summary: dict[str, Any] = {"batch": name, "pending": result.pending, "votes": len(result.votes)}
    if not result.pending:
        _save_labels(args.dataset, out_name, pairs, result, force=args.force)
        summary["pairs"] = out_name
    summary |= status_counts(result)
    print(json_text(summary))
    if result.pending:
        print(
            "people are labelling: run the same command again to collect the labels once they "
            "are done (exit 3 until then)",
            file=sys.stderr,
        )
    return 0 if not result.pending else 3


def _check_free(dataset: Dataset, name: str, folder: Path, *, force: bool) -> None:
    if name in dataset.pairs and not force:
        raise DataError(
            f"pair table '{name}' already exists; pass --force to replace it", path=folder
        )


def _save_labels(
    folder: Path, name: str, pairs: PairTable, result: LabelResult, *, force: bool
) -> None:
    _check_free(Dataset.load(folder), name, folder, force=force)
    result.votes.save(Path(folder) / "votes" / f"{name}.csv")
    Dataset.save_pairs(folder, name, accepted_pairs(pairs, result))


def cmd_status(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"set {TOKEN_ENV} to an admin token of the annotation service")
    client = ServiceClient(args.server, token)
    if args.close:
        if not args.batch:
            raise ConfigError("--close needs --batch")
        print(json_text(client.call("POST", f"/api/admin/batches/{args.batch}/close")))
    elif args.batch:
        print(json_text(client.call("GET", f"/api/admin/batches/{args.batch}")))
    else:
        print(json_text(client.call("GET", "/api/admin/batches")))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.db:
        if not args.batch:
            raise ConfigError("--db needs --batch")
        store = AnnotationStore.open(args.db)
        try:
            spec = store.batch_spec(args.batch)
            records = store.vote_records(args.batch)
            labels = aggregate(
                args.method,
                store.votes(args.batch),
                store.pair_ids(args.batch),
                min_agreement=args.min_agreement,
            )
            store.record("cli", f"export {args.format}", args.batch)
        finally:
            store.close()
    elif args.dataset:
        dataset = Dataset.load(args.dataset)
        pairs = _pairs(dataset, args.pairs, args.dataset)
        spec = BatchSpec.from_pairs(
            args.batch or f"{dataset.name}-{Path(args.pairs).stem}", dataset, pairs
        )
        records, labels = None, None
    else:
        raise ConfigError("give a DATASET (with --pairs) or --db URL --batch NAME")
    if args.format == "votes":
        if records is None:
            raise ConfigError("--format votes exports a stored batch: use --db URL --batch NAME")
        n = export_vote_records(records, args.out)
        print(json_text({"votes": n, "out": str(args.out)}))
        return 0
    extra = {"labels": labels} if args.format == "label-studio" else {}
    out = EXPORTS[args.format](
        spec,
        args.out,
        seed=args.seed,
        image_base_url=args.image_base_url,
        overwrite=args.force,
        **extra,
    )
    print(
        json_text({"batch": spec.name, "pairs": len(spec), "format": args.format, "out": str(out)})
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    votes = IMPORTS[args.format](args.results)
    summary: dict[str, Any] = {"votes": len(votes), "out": str(args.out)}
    labelled = None
    if args.dataset:  # everything that can refuse, before any file is written
        dataset = Dataset.load(args.dataset)
        pairs = _pairs(dataset, args.pairs, args.dataset)
        name = args.name or f"{Path(args.pairs).stem}_people"
        _check_free(dataset, name, args.dataset, force=args.force)
        result = aggregate(args.method, votes, pairs.ids, min_agreement=args.min_agreement)
        labelled = (name, pairs, result)
    votes.save(args.out)
    if labelled is not None:
        name, pairs, result = labelled
        _save_labels(args.dataset, name, pairs, result, force=args.force)
        summary["pairs"] = name
        summary |= status_counts(result)
    print(json_text(summary))
    return 0


def add_parser(sub: Any) -> None:
    ann = sub.add_parser(
        "annotate",
        help="people in the loop: the annotation service, batches, Label Studio / MTurk",
        description="Ask people to compare pairs: serve the annotation page, create tokens, "
        "send a dataset's pairs as a batch and collect the labels, or move batches to and "
        f"from Label Studio and MTurk. Admin commands read the admin token from ${TOKEN_ENV}.",
    )
    asub = ann.add_subparsers(dest="annotate_command", required=True, metavar="ACTION")
    db_help = "store: sqlite:///PATH.db (or a path) or postgresql://USER:PASS@HOST/DB"

    serve = asub.add_parser(
        "serve",
        help="run the annotation web service",
        description="Serve the annotation page and API. The first start prints an admin token "
        "(shown once). Annotators open their own link /a/TOKEN.",
    )
    serve.add_argument("--db", required=True, help=db_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="port to listen on")
    serve.add_argument("--public-url", help="the URL annotators use, for the links it hands out")
    serve.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="listen on a non-local --host because a TLS reverse proxy forwards to it",
    )
    serve.set_defaults(func=cmd_serve)

    token = asub.add_parser(
        "token",
        help="create an annotator (or admin) token directly in the store",
        description="Create an annotator or admin and print its token (shown only once).",
    )
    token.add_argument("--db", required=True, help=db_help)
    token.add_argument("--name", required=True, help="who the token is for")
    token.add_argument("--admin", action="store_true", help="an admin token")
    token.add_argument(
        "--expires-in",
        type=parse_duration,
        metavar="DURATION",
        help="the token stops working after this long: 30m, 12h, 7d (default: when revoked)",
    )
    token.add_argument("--public-url", help="print the annotator's link on this URL")
    token.set_defaults(func=cmd_token)
    revoke = asub.add_parser(
        "revoke",
        help="take back an annotator's (or admin's) access",
        description="Revoke an annotator's token in the store: it stops working (in a running "
        "service within 10 seconds); their votes stay. 'annotate status' or GET "
        "/api/admin/annotators lists the ids.",
    )
    revoke.add_argument("--db", required=True, help=db_help)
    revoke.add_argument("--annotator", required=True, help="the annotator's id, e.g. w0003")
    revoke.set_defaults(func=cmd_revoke)

    def people_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--k", type=int, default=5, help="votes per pair (default 5)")
        p.add_argument("--new-annotators", type=int, default=0, help="make N new annotator links")
        p.add_argument("--wait", action="store_true", help="wait until the batch is done")
        p.add_argument("--poll-s", type=float, default=10.0, help="seconds between checks")
        p.add_argument("--timeout-s", type=float, help="stop waiting after this long")
        p.add_argument(
            "--min-check-accuracy",
            type=float,
            default=0.0,
            help="leave out annotators below this share of right check answers",
        )

    def agg_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--method",
            choices=sorted(AGGREGATORS),
            default="majority",
            help="aggregation rule (default majority)",
        )
        p.add_argument(
            "--min-agreement",
            type=float,
            default=0.6,
            help="prune pairs whose agreement is below this (default 0.6)",
        )
        p.add_argument("--name", help="new pair table for the accepted labels")
        p.add_argument("--force", action="store_true", help="replace an existing pair table")

    req = asub.add_parser(
        "request",
        help="ask people (through the service) to label a dataset's pairs",
        description="Send a pair table (by name, or a pair CSV over the dataset's images) as a "
        "batch to the annotation service and print the annotators' links. Without --wait it "
        "returns at once (exit 3: pending); run it again later to collect: once the batch is "
        "done it writes the accepted pairs as a new pair table and every vote to "
        "DATASET/votes/NAME.csv.",
    )
    req.add_argument("dataset", type=Path, help="dataset folder")
    req.add_argument("--pairs", required=True, help="pair table name or pair CSV to label")
    req.add_argument("--check", help="pair table / CSV of labelled check pairs")
    req.add_argument(
        "--examples", help="pair table / CSV of labelled pairs the instructions show as solved"
    )
    req.add_argument("--server", required=True, help="the service's URL")
    req.add_argument("--batch", help="batch name (default DATASET-PAIRS)")
    people_args(req)
    agg_args(req)
    req.set_defaults(func=cmd_request)

    status = asub.add_parser(
        "status", help="progress of batches", description="Progress of every batch, or one."
    )
    status.add_argument("--server", required=True, help="the service's URL")
    status.add_argument("--batch", help="one batch")
    status.add_argument("--close", action="store_true", help="close the batch now")
    status.set_defaults(func=cmd_status)

    exp = asub.add_parser(
        "export",
        help="write a batch as Label Studio tasks or an MTurk input CSV",
        description="Export a dataset's pairs, or a stored batch, for Label Studio (tasks.json "
        "and config.xml with equal and can't-tell choices; a stored batch's aggregated labels "
        "come as annotations by 'outpool-aggregate', to review there) or MTurk (input.csv and "
        "layout.html); or a stored batch's votes as CSV (--format votes).",
    )
    exp.add_argument("dataset", type=Path, nargs="?", help="dataset folder (or use --db)")
    exp.add_argument("--pairs", default="train", help="pair table name or pair CSV")
    exp.add_argument("--db", help=db_help)
    exp.add_argument("--batch", help="batch name")
    exp.add_argument("--format", choices=[*EXPORTS, "votes"], required=True)
    exp.add_argument("--out", type=Path, required=True, help="folder (or CSV for votes)")
    exp.add_argument("--image-base-url", help="host images here instead of embedding them")
    exp.add_argument("--seed", type=int, default=0, help="left/right randomisation seed")
    exp.add_argument("--force", action="store_true", help="replace an existing folder")
    exp.add_argument(
        "--method", choices=sorted(AGGREGATORS), default="majority", help="aggregation rule"
    )
    exp.add_argument(
        "--min-agreement", type=float, default=0.6, help="prune pairs below this agreement"
    )
    exp.set_defaults(func=cmd_export)

    imp = asub.add_parser(
        "import",
        help="read Label Studio / MTurk results back into votes",
        description="Read a Label Studio JSON export or an MTurk batch results CSV into a vote "
        "CSV; with a DATASET, also aggregate the votes into a new pair table.",
    )
    imp.add_argument("results", type=Path, help="Label Studio JSON export or MTurk results CSV")
    imp.add_argument("--format", choices=sorted(IMPORTS), required=True)
    imp.add_argument("--out", type=Path, required=True, help="vote CSV to write")
    imp.add_argument("--dataset", type=Path, help="dataset whose pairs the results answer")
    imp.add_argument("--pairs", default="train", help="pair table name or pair CSV")
    agg_args(imp)
    imp.set_defaults(func=cmd_import)
