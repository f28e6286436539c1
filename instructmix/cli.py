"""`instructmix run|pool|model|probe|select|augment|train|eval|compare|report|schema|testbed|
serve|convert-gguf` (`--debug` on any of them shows the traceback of an error)."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path

from instructmix import runtime
from instructmix.config import ConfigError, json_schema, load_config
from instructmix.layout import REPORT, RunLayout
from instructmix.pipeline import STAGES

STAGE_NAMES = [s.name for s in STAGES]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (default: one line)")
    p = argparse.ArgumentParser(prog="instructmix", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, parents=[common])
    run = add("run", help="run every stage (finished stages are skipped)")
    run.add_argument("--stop-after", choices=STAGE_NAMES)
    for name in STAGE_NAMES:
        s = add(name, help=f"run only the {name} stage")
        s.add_argument("--force", action="store_true", help="re-run even if up to date")
    for name, s in sub.choices.items():
        s.add_argument("config", help="YAML run config")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set train.epochs=2")
        s.set_defaults(command=name)
    add("schema", help="print the config's JSON schema")
    tb = add("testbed", help="write the testbed's ground truth JSON")
    tb.add_argument("--out", default="-")
    from instructmix.generation import serve

    serve.add_arguments(add(
        "serve", help="serve a GGUF model (llama.cpp) as an OpenAI-compatible chat endpoint"))
    cg = add("convert-gguf", help="dequantise a GGUF causal LM into an HF folder")
    cg.add_argument("gguf_file")
    cg.add_argument("out_dir")
    return p


def _one_line(e: BaseException) -> str:
    """The error's own message: a Ray task error's cause, the first line of the rest."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        return _one_line(cause)
    if isinstance(e, ConfigError):
        return str(e).strip()  # one line per problem
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if isinstance(e, (ConfigError, ValueError, FileNotFoundError, RuntimeError)) \
        else f"{type(e).__name__}: {text}"


def _command(args) -> int:
    if args.command == "schema":
        print(json_schema())
        return 0
    if args.command == "serve":
        from instructmix.generation import serve

        return serve.run(args)
    if args.command == "convert-gguf":
        from instructmix.generation.gguf import gguf_to_hf

        print(gguf_to_hf(args.gguf_file, args.out_dir))
        return 0
    if args.command == "testbed":
        from instructmix.data.testbed import ground_truth

        text = json.dumps(ground_truth(), indent=2)
        if args.out == "-":
            print(text)
        else:
            Path(args.out).write_text(text + "\n")
        return 0
    cfg = load_config(args.config, args.set)
    from instructmix import pipeline

    if args.command == "run":
        pipeline.run_all(cfg, args.stop_after)
        report = RunLayout(cfg.run_dir).path(REPORT.html)
        if report.is_file() and args.stop_after in (None, "report"):
            print(f"report: {report}")
    else:
        pipeline.run_stage(cfg, pipeline.BY_NAME[args.command], force=args.force)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # python-mip logs its version and each solve's start values at INFO
    logging.getLogger("mip").setLevel(logging.INFO if args.debug else logging.WARNING)
    runtime.prepare()
    try:
        return _command(args)
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        if not isinstance(e, ConfigError):
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
