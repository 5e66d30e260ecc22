#!/usr/bin/env python3
"""Regenerate container-options.json: per version of Apple's `container`, the
options and flags of the commands coderunner uses, read from the Swift
ArgumentParser declarations at each release tag.

    git clone --bare https://github.com/apple/container /tmp/container.git
    tests/doubles/gen_container_options.py /tmp/container.git > tests/doubles/container-options.json

It reads `@Option`/`@Flag`/`@OptionGroup` declarations and their `name:`
specifications (ArgumentParser's rules: no name is `.long`, the long name is
the property in kebab case, `.short` its first letter). Nothing is executed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

VERSIONS = ["0.7.1", "0.8.0", "0.9.0", "0.10.0", "0.12.3", "1.0.0", "1.2.2"]

# command path -> the struct that implements it
COMMANDS = {
    "": "Application",
    "run": "ContainerRun",
    "exec": "ContainerExec",
    "inspect": "ContainerInspect",
    "logs": "ContainerLogs",
    "start": "ContainerStart",
    "stop": "ContainerStop",
    "delete": "ContainerDelete",
    "list": "ContainerList",
    "build": "BuildCommand",
    "image list": "ImageList",
    "image pull": "ImagePull",
    "system start": "SystemStart",
    "image": "ImageCommand",
    "system": "SystemCommand",
    "system stop": "SystemStop",
    "system status": "SystemStatus",
    "system kernel set": "KernelSet",
}


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True, text=True).stdout


def blank_strings(text: str) -> str:
    """The text with string literal contents replaced by spaces (same offsets)."""
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', lambda m: '"' + " " * (len(m.group()) - 2) + '"', text)


def balanced(text: str, start: int) -> int:
    """Index just past the parenthesis closing the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced")


def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def names_of(spec: str | None, prop: str) -> list[str]:
    if spec is None:
        return ["--" + kebab(prop)]
    out = []
    for item in re.findall(r'\.(shortAndLong|long|short|customLong\("[^"]*"[^)]*\)|customShort\("[^"]*"[^)]*\))', spec):
        if item == "long":
            out.append("--" + kebab(prop))
        elif item == "short":
            out.append("-" + prop[0])
        elif item == "shortAndLong":
            out += ["-" + prop[0], "--" + kebab(prop)]
        elif item.startswith("customLong"):
            out.append("--" + re.search(r'"([^"]*)"', item).group(1))
        else:
            out.append("-" + re.search(r'"([^"]*)"', item).group(1))
    return out


def parse_structs(files: dict[str, str]) -> dict[str, dict]:
    """struct name (qualified when nested, e.g. Flags.Process) -> declarations and configuration."""
    structs: dict[str, dict] = {}
    for text in files.values():
        plain = blank_strings(text)
        stack: list[tuple[str, int]] = []  # (name, brace depth at which it opened)
        depth = 0
        pending: str | None = None
        i = 0
        while i < len(plain):
            m = re.compile(r"\b(?:struct|extension|enum|class)\s+([\w.]+)").match(plain, i)
            if m and (i == 0 or not plain[i - 1].isalnum()):
                pending = m.group(1)
                i = m.end()
                continue
            c = plain[i]
            if c == "{":
                depth += 1
                if pending is not None:
                    stack.append((pending, depth))
                    pending = None
            elif c == "}":
                if stack and stack[-1][1] == depth:
                    stack.pop()
                depth -= 1
            elif c == "@":
                attr = re.compile(r"@(Option|Flag|OptionGroup|Argument)\b").match(plain, i)
                if attr and stack:
                    j = attr.end()
                    args = ""
                    if plain[j] == "(":
                        k = balanced(plain, j)
                        args, j = text[j + 1 : k - 1], k
                    var = re.compile(
                        r"\s*(?:(?:public|private|internal|fileprivate)\s+)?var\s+(\w+)\s*(?::\s*([\w.\[\]?]+))?"
                    ).match(plain, j)
                    if var:
                        owner = _qualify(stack)
                        entry = structs.setdefault(owner, {"decls": [], "config": ""})
                        entry["decls"].append((attr.group(1), args, var.group(1), var.group(2) or ""))
                        i = var.end()
                        continue
            elif c == "s" and plain.startswith("static let configuration", i) and stack:
                k = plain.index("(", i)
                end = balanced(plain, k)
                structs.setdefault(_qualify(stack), {"decls": [], "config": ""})["config"] = text[k:end]
                i = end
                continue
            elif c == "c" and plain.startswith("config.aliases", i) and stack:
                line = text[i : text.index("\n", i)]
                structs.setdefault(_qualify(stack), {"decls": [], "config": ""})["config"] += " " + line
            i += 1
    return structs


def _qualify(stack: list[tuple[str, int]]) -> str:
    return ".".join(n for n, _ in stack)


def lookup(structs: dict[str, dict], name: str) -> dict | None:
    if name in structs:
        return structs[name]
    for key, value in structs.items():
        if key.endswith("." + name):
            return value
    return None


def options_of(
    structs: dict[str, dict], name: str, seen: set[str] | None = None
) -> tuple[set[str], set[str], set[str]]:
    """(options that take a value, flags, options whose value is an integer) of a
    struct, its option groups included."""
    seen = seen or set()
    valued: set[str] = set()
    flags: set[str] = set()
    integers: set[str] = set()
    entry = lookup(structs, name)
    if entry is None or name in seen:
        return valued, flags, integers
    seen.add(name)
    for kind, args, prop, typ in entry["decls"]:
        if kind == "OptionGroup":
            v, f, n = options_of(structs, typ.rstrip("?"), seen)
            valued |= v
            flags |= f
            integers |= n
            continue
        if kind == "Argument":
            continue
        spec = re.search(r"name:\s*(\[[^\]]*\]|\.[\w]+(?:\([^)]*\))?)", args)
        names = names_of(spec.group(1) if spec else None, prop)
        if kind == "Option":
            valued.update(names)
            if re.fullmatch(r"U?Int(?:8|16|32|64)?\??|\[U?Int(?:8|16|32|64)?\]", typ):
                integers.update(names)
        elif ".prefixedEnableDisable" in args:
            flags.update(f"--{w}-{n[2:]}" for n in names if n.startswith("--") for w in ("enable", "disable"))
        elif ".prefixedNo" in args:
            flags.update(names)
            flags.update(f"--no-{n[2:]}" for n in names if n.startswith("--"))
        else:
            flags.update(names)
    return valued, flags, integers


def aliases(structs: dict[str, dict], name: str) -> list[str]:
    entry = lookup(structs, name)
    if entry is None:
        return []
    m = re.search(r"aliases\s*[:=]\s*\[([^\]]*)\]", entry["config"])
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def table(repo: str, tag: str) -> dict:
    paths = [p for p in git(repo, "ls-tree", "-r", "--name-only", tag, "Sources").split() if p.endswith(".swift")]
    files = {p: git(repo, "show", f"{tag}:{p}") for p in paths}
    structs = parse_structs(files)
    out = {}
    for path, struct in COMMANDS.items():
        if lookup(structs, struct) is None:
            continue
        valued, flags, integers = options_of(structs, struct)
        out[path] = {
            "options": sorted(valued),
            "flags": sorted(flags),
            "integers": sorted(integers),
            "aliases": aliases(structs, struct),
        }
    return out


def main() -> None:
    repo = sys.argv[1]
    json.dump({tag: table(repo, tag) for tag in VERSIONS}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
