"""Test stage in Python: validates the JSON and TOML files of a source archive (or plain input
files) — syntax, and keys each matching file must have — and fails the pipeline on any problem.

Config ([stage.config]):
  patterns = ["*.json", "*.toml"]                  # which files to check (fnmatch on the path)
  [[stage.config.require]]                          # optional key rules
  file = "Cargo.toml"                               # fnmatch pattern
  keys = ["package.name", "package.version"]       # dotted paths that must exist
"""

import fnmatch
import io
import json
import os
import tarfile
import tomllib

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, types


def info(message: str) -> None:
    log.log(log.Level.INFO, message)


def parse(name: str, data: bytes):
    """The parsed document, or raises ValueError with a located message."""
    text = data.decode("utf-8")
    if name.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}:{err.lineno}:{err.colno}: {err.msg}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{name}: {err}") from None


def has_key(document, dotted: str) -> bool:
    node = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def files_of(ctx: types.StageContext):
    """(name, bytes) for every input file, and every member of input tar archives."""
    for artifact in ctx.inputs:
        with open(artifact.path, "rb") as handle:
            data = handle.read()
        if artifact.name.endswith(".tar"):
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive.getmembers():
                    if member.isfile():
                        extracted = archive.extractfile(member)
                        if extracted is not None:
                            yield member.name, extracted.read()
        else:
            yield f"{artifact.stage}/{artifact.name}", data


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="config-check",
            version="0.1.0",
            phase=types.Phase.TEST,
            description="Validates JSON and TOML files (syntax and required keys), in Python",
        )

    def run(self, ctx: types.StageContext) -> types.StageResult:
        config = json.loads(ctx.config)
        patterns = config.get("patterns", ["*.json", "*.toml"])
        rules = config.get("require", [])
        checked, problems = 0, []
        for name, data in files_of(ctx):
            base = os.path.basename(name)
            if not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(base, p) for p in patterns):
                continue
            checked += 1
            try:
                document = parse(name, data)
            except (ValueError, UnicodeDecodeError) as err:
                problems.append(str(err))
                continue
            for rule in rules:
                if fnmatch.fnmatch(name, rule["file"]) or fnmatch.fnmatch(base, rule["file"]):
                    for key in rule.get("keys", []):
                        if not has_key(document, key):
                            problems.append(f"{name}: missing key `{key}`")
        report = {"checked": checked, "problems": problems}
        with open(os.path.join(ctx.output_dir, "config-report.json"), "w") as handle:
            json.dump(report, handle, indent=2)
        outputs = [types.Output(name="config-report.json", media_type="application/json")]
        if checked == 0:
            raise Err(types.Failure(message=f"no files match {patterns}"))
        if problems:
            for problem in problems:
                log.log(log.Level.WARN, problem)
            raise Err(types.Failure(
                message=f"{len(problems)} problems in {checked} files; first: {problems[0]}"
            ))
        info(f"{checked} files are valid")
        return types.StageResult(outputs=outputs, summary=f"{checked} config files valid")
