"""Dockerfiles read as Docker reads them, for the deploy tests: ``dockerfile-parse`` splits the
instructions and tracks the build arguments and environment in effect at each one; on top of that,
words with variables substituted, a RUN's shell commands, the copies, and the process an image
runs by default."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

# A base image's PATH, so that ``PATH=/app/.venv/bin:$PATH`` resolves as it does in a build.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass
class Instruction:
    keyword: str
    value: str
    stage: int  # 0 for the ARGs before the first FROM, then 1, 2, ... per FROM
    variables: dict[str, str]  # the build arguments and environment in effect (ENV wins, as in Docker)

    def words(self) -> list[str]:
        """The value split into words as Docker does, quotes removed and variables substituted."""
        return list(WordSplitter(self.value, args=self.variables).split(dequote=True))

    def commands(self) -> list[list[str]]:
        """A RUN's shell commands (split at ``&&`` and ``;``), without the RUN's own ``--`` flags."""
        words = self.words()
        while words and words[0].startswith("--"):
            words.pop(0)
        commands: list[list[str]] = [[]]
        for word in words:
            if word in ("&&", ";"):
                commands.append([])
            else:
                commands[-1].append(word)
        return [c for c in commands if c]


class Dockerfile:
    """A Dockerfile as ``dockerfile-parse`` reads it, built with the given build arguments."""

    def __init__(self, path: Path, build_args: dict[str, str] | None = None) -> None:
        self.path = path
        self.build_args = dict(build_args or {})
        self.parser = DockerfileParser(str(path), build_args=self.build_args, parent_env=BASE_ENV)
        self.instructions: list[Instruction] = []
        stage = 0
        for item, context in zip(self.parser.structure, self.parser.context_structure, strict=True):
            keyword = item["instruction"]
            if keyword == "COMMENT":
                continue
            stage += keyword == "FROM"
            self.instructions.append(Instruction(keyword, item["value"], stage, {**context.args, **context.envs}))

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last_stage(self) -> list[Instruction]:
        last = max(i.stage for i in self.instructions)
        return [i for i in self.instructions if i.stage == last]

    def final(self, keyword: str) -> Instruction:
        found = [i for i in self.last_stage() if i.keyword == keyword]
        assert found, f"{self.path}: no {keyword} in the final stage"
        return found[-1]

    def global_args(self) -> dict[str, str]:
        """ARGs before the first FROM, with their defaults."""
        return dict(i.value.split("=", 1) for i in self.instructions if i.keyword == "ARG" and i.stage == 0)

    def context_copies(self) -> list[tuple[list[str], str]]:
        """COPY instructions that read the build context (not --from another stage or image), with
        the build arguments substituted."""
        copies = []
        for instruction in self.all("COPY"):
            words = instruction.words()
            if any(w.startswith("--from") for w in words):
                continue
            args = [w for w in words if not w.startswith("--")]
            copies.append((args[:-1], args[-1]))
        return copies

    def stage_copies(self) -> list[tuple[str, list[str], str]]:
        """COPY --from=<stage or image>: (from, sources, destination)."""
        copies = []
        for instruction in self.all("COPY"):
            words = instruction.words()
            source = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            if source is not None:
                args = [w for w in words if not w.startswith("--")]
                copies.append((source, args[:-1], args[-1]))
        return copies

    def commands(self) -> list[list[str]]:
        return [command for run in self.all("RUN") for command in run.commands()]

    def process(self) -> list[str]:
        """What the container runs by default: ENTRYPOINT and CMD. An entrypoint of the form
        ``sh -c 'exec …'`` is followed to the program the shell replaces itself with."""
        entrypoint = json.loads(self.final("ENTRYPOINT").value)
        command = json.loads(self.final("CMD").value)
        if entrypoint[:2] not in (["/bin/sh", "-c"], ["sh", "-c"]):
            return [*entrypoint, *command]
        positional = [*entrypoint[4:], *command]  # entrypoint[3] is $0
        script = shlex.split(entrypoint[2])
        assert script[0] == "exec", f"{self.path}: the shell must exec the program, not stay PID 1"
        env = self.parser.envs
        argv: list[str] = []
        for word in script[1:]:
            if word == "$@":
                argv += positional
            else:
                argv.append(re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], word))
        return argv

    def healthcheck(self) -> list[str]:
        """The HEALTHCHECK's command (exec form)."""
        _, _, command = self.final("HEALTHCHECK").value.partition("CMD")
        return list(json.loads(command))
