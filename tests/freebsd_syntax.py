"""A checker for rendered FreeBSD command lines, against what the FreeBSD manual pages document.

`check_rendering(lines)` takes a plan's rendering (comments, `<<'EOF'` here-documents and all)
and returns the problems found, one string each; `check_argv(argv)` checks one command. The
tables below are the documented options and parameters, each with the manual page it comes from
(FreeBSD 14/15 manual pages unless said otherwise). The checker knows the flags and operand
counts of each command, every jail(8) parameter and the form of its value, and a few rules that
are ladle's own policy (marked "policy").
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

Problems = list[str]


# A small BSD getopt ------------------------------------------------------------------------------

@dataclass
class Parsed:
    opts: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)
    problems: Problems = field(default_factory=list)

    def has(self, flag: str) -> bool:
        return any(f == flag for f, _ in self.opts)

    def values(self, flag: str) -> list[str]:
        return [v for f, v in self.opts if f == flag and v is not None]


def getopt(args: list[str], flags: str, with_arg: str = "", long: dict[str, bool] | None = None) -> Parsed:
    """Parse like getopt(3) on FreeBSD: options first, '--' ends them, the first operand ends them.
    `long` maps a long option name to whether it takes a value (--name=value or --name value)."""
    p = Parsed()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a.startswith("--") and long is not None:
            name, eq, value = a[2:].partition("=")
            if name not in long:
                p.problems.append(f"unknown option --{name}")
            elif long[name] and not eq:
                if i + 1 >= len(args):
                    p.problems.append(f"--{name} needs a value")
                else:
                    i += 1
                    value = args[i]
            elif not long[name] and eq:
                p.problems.append(f"--{name} takes no value")
            p.opts.append((f"--{name}", value if long.get(name) else None))
            i += 1
            continue
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in with_arg:
                value = a[j + 1:]
                if not value:
                    if i + 1 >= len(args):
                        p.problems.append(f"-{c} needs a value")
                        value = ""
                    else:
                        i += 1
                        value = args[i]
                p.opts.append((c, value))
                break
            if c in flags:
                p.opts.append((c, None))
            else:
                p.problems.append(f"unknown option -{c}")
            j += 1
        i += 1
    p.operands = args[i:]
    return p


def _count(p: Parsed, lo: int, hi: int | None, what: str) -> None:
    n = len(p.operands)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        p.problems.append(f"expected {want} {what}, got {n}: {p.operands}")


def _absolute(p: Parsed, path: str, what: str) -> None:
    if not path.startswith("/"):
        p.problems.append(f"{what} {path!r} is not an absolute path")


# jail(8) parameters -------------------------------------------------------------------------------
# From jail(8), "Jail Parameters": the core parameters, allow.*, the parameters kernel modules add,
# and the pseudo-parameters only jail(8) uses. Kinds: bool (bare name, "no" prefix on the last
# component, or =true/=false), uint, int, str, path, list (comma-separated), ro (read-only),
# or a tuple of the allowed words.

JAILSYS = ("inherit", "new", "disable")
ALLOW_BOOLS = (
    "set_hostname", "sysvipc", "raw_sockets", "chflags", "mount", "mount.devfs", "quotas", "read_msgbuf",
    "socket_af", "mlock", "nfsd", "reserved_ports", "unprivileged_parent_tampering",
    "unprivileged_proc_debug", "suser", "extattr", "adjtime", "settime", "routing", "setaudit",
    "mount.fdescfs", "mount.fusefs", "mount.nullfs", "mount.procfs", "mount.linprocfs", "mount.linsysfs",
    "mount.tmpfs", "mount.zfs", "vmm", "vmm_ppt", "dying",
)
JAIL_PARAMS: dict[str, object] = {
    # core parameters
    "jid": "uint", "name": "str", "path": "path",
    "ip4.addr": "list", "ip4.saddrsel": "bool", "ip4": JAILSYS,
    "ip6.addr": "list", "ip6.saddrsel": "bool", "ip6": JAILSYS,
    "vnet": ("inherit", "new"),
    "host.hostname": "str", "host.domainname": "str", "host.hostuuid": "str", "host.hostid": "uint",
    "host": ("inherit", "new"),
    "securelevel": "int", "devfs_ruleset": "uint", "children.max": "uint", "children.cur": "ro",
    "enforce_statfs": ("0", "1", "2"), "persist": "bool", "cpuset.id": "ro", "dying": "ro",
    "mac.label": "str", "parent": "ro", "osrelease": "str", "osreldate": "uint",
    **{f"allow.{a}": "bool" for a in ALLOW_BOOLS},
    # parameters added by kernel modules
    "linux": ("inherit", "new"), "linux.osname": "str", "linux.osrelease": "str",
    "linux.oss_version": "uint", "sysvmsg": JAILSYS, "sysvsem": JAILSYS, "sysvshm": JAILSYS,
    "zfs.mount_snapshot": ("0", "1"),
    # pseudo-parameters
    "exec.prepare": "str", "exec.prestart": "str", "exec.created": "str", "exec.start": "str",
    "command": "str", "exec.poststart": "str", "exec.prestop": "str", "exec.stop": "str",
    "exec.poststop": "str", "exec.release": "str", "exec.clean": "bool", "exec.jail_user": "str",
    "exec.system_jail_user": "bool", "exec.system_user": "str", "exec.timeout": "uint",
    "exec.consolelog": "path", "exec.fib": "uint", "stop.timeout": "uint", "interface": "str",
    "vnet.interface": "list", "zfs.dataset": "list", "ip_hostname": "bool", "mount": "str",
    "mount.fstab": "path", "mount.devfs": "bool", "mount.fdescfs": "bool", "mount.procfs": "bool",
    "depend": "list",
}
JAIL_PARAM_PREFIXES = ("meta.", "env.")  # jail(8): meta.keyname=value, env.keyname=value


def _bool_name(name: str) -> str | None:
    """The boolean parameter `name` sets to false with its "no" prefix, if it is one."""
    head, _, last = name.rpartition(".")
    if last.startswith("no"):
        base = f"{head}.{last[2:]}" if head else last[2:]
        if JAIL_PARAMS.get(base) == "bool":
            return base
    return None


def check_jail_param(param: str) -> Problems:
    name, eq, value = param.partition("=")
    if name.startswith(JAIL_PARAM_PREFIXES):
        return [] if len(name) > 5 else [f"{name}: missing key"]
    kind = JAIL_PARAMS.get(name)
    if kind is None:
        if not eq and _bool_name(name):
            return []
        return [f"unknown jail parameter {name!r}"]
    if kind == "ro":
        return [f"jail parameter {name} is read-only"]
    if kind == "bool":
        if eq and value not in ("true", "false"):
            return [f"{name} is boolean: give it bare, with 'no', or =true/=false, not {value!r}"]
        return []
    if not eq:
        return [f"jail parameter {name} needs a value"]
    if isinstance(kind, tuple):
        return [] if value in kind else [f"{name} takes {'|'.join(kind)}, not {value!r}"]
    if kind == "uint" and not re.fullmatch(r"\d+", value):
        return [f"{name} takes an unsigned number, not {value!r}"]
    if kind == "int" and not re.fullmatch(r"-?\d+", value):
        return [f"{name} takes a number, not {value!r}"]
    if kind == "path" and not value.startswith("/"):
        return [f"{name} takes an absolute path, not {value!r}"]
    if name == "name" and ("." in value or not value):
        return [f"jail name {value!r} must be non-empty and contain no '.'"]
    if kind == "str" and name.startswith("host.") and not value:
        return [f"{name} must not be empty"]
    return []


def check_jail(args: list[str]) -> Problems:
    """jail(8) SYNOPSIS: jail [-cm] [-Cdqv] [-f conf_file] [-p limit] [jail];
    jail [-r] [-Cqv] [-f conf_file] [-p limit] [* | jail ...];
    jail [-cm] [-dhilqv] [-J jid_file] [-u username] [-U username] param=value ... [command=command ...];
    jail [-rR] [-qv] [* | jail ...]; jail [-f conf_file] -e separator.
    `-f -` reads the configuration from stdin: not in the manual page, but in jail(8)'s source
    (usr.sbin/jail/config.c, load_config) and what pot's stop relies on."""
    p = getopt(args, "cmrRCdhilqv", "efJnpsuU")
    ops = {f for f, _ in p.opts}
    if not ops & {"c", "m", "r", "R", "e"}:
        p.problems.append("one of -c, -e, -m, -r must be given")
    if "f" in ops or "e" in ops or not ops & {"c", "m"}:
        for name in p.operands:  # jail names (or '*')
            if name != "*" and "=" in name:
                p.problems.append(f"{name!r}: parameters are only given with -c or -m without -f")
        if ops & {"r", "R"} and not p.operands and "f" not in ops:
            p.problems.append("-r needs a jail name or '*'")
        return p.problems
    params: list[str] = []
    for i, a in enumerate(p.operands):
        if a.startswith("command="):  # the rest of the line is the command and its arguments
            params.append(a)
            p.problems += check_argv([a[len("command="):], *p.operands[i + 1:]], inside=True)
            break
        params.append(a)
    for param in params:
        p.problems += check_jail_param(param)
    names = {q.partition("=")[0] for q in params}
    if "c" in ops and not names & {"persist", "exec.start", "command"}:
        p.problems.append("jail -c needs persist, exec.start or command (jail(8), persist)")
    if "m" in ops and not names & {"name", "jid"}:
        p.problems.append("jail -m needs name= or jid=")
    if "c" in ops and "R" in ops:
        p.problems.append("-R does not combine with -c")
    return p.problems


def check_jail_conf(body: list[str]) -> Problems:
    """jail.conf(5): `jailname { parameter = "value"; parameter; ... }`, double-quoted strings
    with backslash escapes."""
    problems: Problems = []
    text = "\n".join(body).strip()
    m = re.fullmatch(r"([A-Za-z0-9_-]+)\s*\{(.*)\}", text, re.S)
    if not m:
        return ["jail.conf: expected one `name { ... }` block"]
    for stmt in _conf_statements(m.group(2), problems):
        name, eq, value = (s.strip() for s in stmt.partition("="))
        if eq and value.startswith('"'):
            if not re.fullmatch(r'"(?:[^"\\$]|\\.)*"', value):
                problems.append(f"jail.conf: badly quoted value for {name}: {value}")
                continue
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        problems += [f"jail.conf: {q}" for q in check_jail_param(f"{name}={value}" if eq else name)]
    return problems


def _conf_statements(block: str, problems: Problems) -> list[str]:
    stmts, cur, quoted, escaped = [], "", False, False
    for c in block:
        if escaped:
            cur, escaped = cur + c, False
        elif c == "\\":
            cur, escaped = cur + c, True
        elif c == '"':
            cur, quoted = cur + c, not quoted
        elif c == ";" and not quoted:
            stmts.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip() or quoted:
        problems.append(f"jail.conf: unterminated statement {cur.strip()!r}")
    return [s for s in stmts if s]


# Other commands -----------------------------------------------------------------------------------

def check_jexec(args: list[str]) -> Problems:
    """jexec(8): jexec [-l] [-d working-directory] [-u username | -U username] jail [command ...]"""
    p = getopt(args, "l", "duU")
    if p.has("u") and p.has("U"):
        p.problems.append("-u and -U exclude each other")
    _count(p, 1, None, "operands (jail [command ...])")
    if len(p.operands) > 1:
        p.problems += check_argv(p.operands[1:], inside=True)
    return p.problems


def check_env(args: list[str], *, inside: bool = True) -> Problems:
    """env(1): env [-0iv] [-L|-U user[/class]] [-P altpath] [-S string] [-u name] [name=value ...]
    [utility [argument ...]]; on the host (an image pot's environment for jexec) or in a jail."""
    p = getopt(args, "0iv", "LUPSu")
    rest = p.operands
    while rest and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0], re.S):
        rest = rest[1:]
    if rest and "=" in rest[0].split("/")[-1]:
        p.problems.append(f"invalid variable assignment {rest[0]!r}")
    if rest:
        p.problems += check_argv(rest, inside=inside)
    return p.problems


def check_sh(args: list[str]) -> Problems:
    """sh(1): sh [-/+abCEefhIimnPpTuVvx] [-/+o longname] [script [arg ...]];
    sh [-/+abCEefhIimnPpTuVvx] [-/+o longname] -c string [name [arg ...]]; sh -s [arg ...]"""
    p = getopt(args, "abCEefhIimnPpTuVvxcs", "o")
    if p.has("c"):
        if not p.operands:
            p.problems.append("sh -c needs a command string")
        else:
            try:
                shlex.split(p.operands[0])
            except ValueError as e:
                p.problems.append(f"sh -c string does not parse: {e}")
    return p.problems


def check_cp(args: list[str]) -> Problems:
    """cp(1): cp [-R [-H | -L | -P]] [-f | -i | -n] [-alNpsvx] source_file ... target
    (-a is -RpP; -f removes an existing destination and creates a new file)"""
    p = getopt(args, "RHLPfinalNpsvx")
    _count(p, 2, None, "operands (source ... target)")
    return p.problems


def check_mkdir(args: list[str]) -> Problems:
    """mkdir(1): mkdir [-pv] [-m mode] directory_name ..."""
    p = getopt(args, "pv", "m")
    _count(p, 1, None, "directories")
    return p.problems


def check_rmdir(args: list[str]) -> Problems:
    """rmdir(1): rmdir [-pv] directory ..."""
    p = getopt(args, "pv")
    _count(p, 1, None, "directories")
    return p.problems


def check_rm(args: list[str]) -> Problems:
    """rm(1): rm [-f | -i] [-dIRrvWx] file ..."""
    p = getopt(args, "fidIRrvWx")
    _count(p, 1, None, "files")
    return p.problems


def check_cat(args: list[str]) -> Problems:
    """cat(1): cat [-belnstuv] [file ...]"""
    return getopt(args, "belnstuv").problems


def check_uname(args: list[str]) -> Problems:
    """uname(1): uname [-abiKmnoprsUv] (-m is hw.machine, make's MACHINE; -p hw.machine_arch,
    MACHINE_ARCH); no operands."""
    p = getopt(args, "abiKmnoprsUv")
    _count(p, 0, 0, "operands")
    return p.problems


def check_test(args: list[str]) -> Problems:
    """test(1): expressions of unary primaries (-b -c -d -e -f -g -h -k -L -n -O -G -p -r -s -S -t
    -u -w -x -z), each optionally negated with '!', joined by -a or -o."""
    problems: Problems = []
    i, want_primary = 0, True
    while i < len(args):
        if want_primary:
            if args[i] == "!":
                i += 1
                continue
            if args[i] not in {f"-{c}" for c in "bcdefghkLnOGprsStuwxz"} or i + 1 >= len(args):
                return [f"test: expected a unary primary and its operand at {args[i:]}"]
            i += 2
        else:
            if args[i] not in ("-a", "-o"):
                return [f"test: expected -a or -o, not {args[i]!r}"]
            i += 1
        want_primary = not want_primary
    if want_primary:
        problems.append("test: the expression ends with an operator (or is empty)")
    return problems


_FIND_ARGS = {"-type": 1, "-perm": 1, "-name": 1, "-mindepth": 1, "-maxdepth": 1, "-user": 1, "-group": 1}
_FIND_FLAGS = {"-print", "-print0", "-delete", "-prune", "-depth", "-ls", "!", "(", ")", "-o", "-a", "-not", "-and",
               "-or"}


def check_find(args: list[str]) -> Problems:
    """find(1): find [-H | -L | -P] [-EXdsx] [-f path] path ... [expression]; the primaries ladle uses
    (-type bcdflps, -perm [-+]mode, -exec utility ... {} + or ;, -print, -delete, ...)."""
    p = getopt(args, "HLPEXdsx", "f")
    paths = [o for o in p.operands[:next((i for i, o in enumerate(p.operands) if o.startswith(("-", "!", "("))),
                                        len(p.operands))]]
    if not paths:
        p.problems.append("find needs a path")
    expr = p.operands[len(paths):]
    i = 0
    while i < len(expr):
        word = expr[i]
        if word in ("-exec", "-execdir", "-ok"):
            ends = [j for j in range(i + 1, len(expr)) if expr[j] == ";" or (expr[j] == "+" and expr[j - 1] == "{}")]
            end = ends[0] if ends else None
            if end is None or end == i + 1:
                return [*p.problems, f"find {word} needs a utility and ends with ; or {{}} +"]
            i = end + 1
        elif word in _FIND_ARGS:
            value = expr[i + 1] if i + 1 < len(expr) else ""
            if word == "-type" and value not in tuple("bcdflps"):
                p.problems.append(f"find -type takes one of b c d f l p s, not {value!r}")
            if word == "-perm" and not re.fullmatch(r"[-+]?([0-7]{1,4}|[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*)",
                                                    value):
                p.problems.append(f"find -perm: not a mode {value!r}")
            i += 2
        elif word in _FIND_FLAGS:
            i += 1
        else:
            return [*p.problems, f"find: unknown or unchecked primary {word!r}"]
    return p.problems


def check_chmod(args: list[str]) -> Problems:
    """chmod(1): chmod [-fhvx] [-R [-H | -L | -P]] mode file ... (an octal or symbolic mode)"""
    p = getopt(args, "fhvxRHLP")
    _count(p, 2, None, "operands (mode file ...)")
    if p.operands and not re.fullmatch(r"[0-7]{1,4}|[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*", p.operands[0]):
        p.problems.append(f"chmod: not a mode {p.operands[0]!r}")
    return p.problems


RCTL_RESOURCES = {"cputime", "datasize", "stacksize", "coredumpsize", "memoryuse", "memorylocked", "maxproc",
                  "openfiles", "vmemoryuse", "pseudoterminals", "swapuse", "nthr", "msgqqueued", "msgqsize", "nmsgq",
                  "nsem", "nsemop", "nshm", "shmsize", "wallclock", "pcpu", "readbps", "writebps", "readiops",
                  "writeiops"}
_RCTL_SUBJECT = r"(?:process|user|loginclass|jail):[^:\s]+"
_RCTL_RULE = re.compile(_RCTL_SUBJECT + r":(\w+):(deny|log|devctl|throttle|sig\w+)=[0-9]+[kKmMgGtTpP]?"
                        r"(/(process|user|loginclass|jail))?")
_RCTL_FILTER = re.compile(r"(" + _RCTL_SUBJECT + r"(:(\w+)(:(\w+))?)?|:)")


def check_rctl(args: list[str]) -> Problems:
    """rctl(8): rctl [-h] [-n] [filter ...]; rctl -a rule ...; rctl -l [-h] [-n] filter ...;
    rctl -r filter ...; rctl -u [-h] filter ... (rule: subject:subject-id:resource:action=amount[/per])."""
    p = getopt(args, "hnlru", "a")
    modes = [o for o, _ in p.opts if o in ("a", "l", "r", "u")]
    if len(modes) > 1:
        p.problems.append("rctl takes one of -a, -l, -r, -u")
    for rule in p.values("a") + (p.operands if modes == ["a"] else []):
        m = _RCTL_RULE.fullmatch(rule)
        if not m:
            p.problems.append(f"not an rctl rule: {rule!r}")
        elif m.group(1) not in RCTL_RESOURCES:
            p.problems.append(f"unknown rctl resource {m.group(1)!r}")
    if modes and modes[0] in ("l", "r", "u"):
        _count(p, 1, None, f"filters for rctl -{modes[0]}")
        for f in p.operands:
            if not _RCTL_FILTER.fullmatch(f):
                p.problems.append(f"not an rctl filter: {f!r}")
    return p.problems


def check_cpuset(args: list[str]) -> Problems:
    """cpuset(1): cpuset [-c] [-l cpu-list] [-n policy:domain-list] [-j jail | -p pid | -t tid | -s setid | -x irq];
    cpuset -g [-cir] [-d domain | -j jail | -p pid | -t tid | -s setid | -x irq]."""
    p = getopt(args, "cgirC", "lnjptsxd")
    targets = [o for o, _ in p.opts if o in ("j", "p", "t", "s", "x", "d")]
    if len(targets) != 1:
        p.problems.append("cpuset here needs exactly one target (-j, -p, -t, -s, -x or -d)")
    for cpus in p.values("l"):
        if not re.fullmatch(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*|all", cpus):
            p.problems.append(f"not a cpu-list: {cpus!r}")
    if not p.has("g") and not p.values("l") and not p.values("n") and not p.has("s"):
        p.problems.append("cpuset sets nothing without -l, -n or -s")
    _count(p, 0, 0, "operands (a command is not run here)")
    return p.problems


CHFLAGS_WORDS = {"arch", "archived", "nodump", "opaque", "sappnd", "sappend", "schg", "schange", "simmutable",
                 "snapshot", "sunlnk", "sunlink", "uappnd", "uappend", "uarch", "uarchive", "uchg", "uchange",
                 "uimmutable", "uhidden", "hidden", "uoffline", "offline", "urdonly", "rdonly", "readonly",
                 "usparse", "sparse", "usystem", "system", "ureparse", "reparse", "uunlnk", "uunlink"}


def check_chflags(args: list[str]) -> Problems:
    """chflags(1): chflags [-fhvx] [-R [-H | -L | -P]] flags file ..."""
    p = getopt(args, "fhvxRHLP")
    _count(p, 2, None, "operands (flags file ...)")
    if p.operands:
        for word in p.operands[0].split(","):
            base = word[2:] if word.startswith("no") and word not in ("nodump",) else word
            if not (re.fullmatch(r"[0-7]+", word) or base in CHFLAGS_WORDS or word in CHFLAGS_WORDS):
                p.problems.append(f"unknown file flag {word!r}")
    return p.problems


# Networking: ifconfig(8) with if_bridge(4) and ND6 parameters, route(8), sysctl(8), pfctl(8) and
# pf.conf(5) ------------------------------------------------------------------------------------

# ifconfig parameters ladle may give: name -> number of values. From ifconfig(8) (FreeBSD 14):
# the general parameters, the bridge parameters (addm, deletem, private, ...), the ICMPv6
# Neighbor Discovery flags (after `inet6`: no_dad, ifdisabled, ...) and the IPv6 address ones.
IFCONFIG_PARAMS = {
    "create": 0, "destroy": 0, "up": 0, "down": 0, "name": 1, "description": 1, "descr": 1, "-description": 0,
    "-descr": 0, "group": 1, "-group": 1, "alias": 0, "-alias": 0, "delete": 0, "remove": 0, "add": 0,
    "netmask": 1, "prefixlen": 1, "broadcast": 1, "mtu": 1, "vnet": 1, "-vnet": 1, "metric": 1,
    "addm": 1, "deletem": 1, "private": 1, "-private": 1, "span": 1, "-span": 1, "stp": 1, "-stp": 1,
    "accept_rtadv": 0, "-accept_rtadv": 0, "no_radr": 0, "-no_radr": 0, "auto_linklocal": 0,
    "-auto_linklocal": 0, "defaultif": 0, "-defaultif": 0, "ifdisabled": 0, "-ifdisabled": 0, "nud": 0,
    "-nud": 0, "no_prefer_iface": 0, "-no_prefer_iface": 0, "no_dad": 0, "-no_dad": 0,
    "autoconf": 0, "-autoconf": 0, "deprecated": 0, "-deprecated": 0, "pltime": 1, "vltime": 1,
    "prefer_source": 0, "-prefer_source": 0,
}
ND6_FLAGS = {"accept_rtadv", "no_radr", "auto_linklocal", "defaultif", "ifdisabled", "nud", "no_prefer_iface",
             "no_dad"}
CLONERS = ("bridge", "epair")  # interfaces ladle creates by cloner name (ifconfig prints the unit)


def _address(af: str, text: str) -> str | None:
    """A problem with `text` as an inet (dotted quad, optional /len) or inet6 (optional /len)
    address, or None."""
    import ipaddress
    if af == "inet":
        return None if _inet(text) else f"invalid inet address {text!r}"
    addr, _, plen = text.partition("/")
    try:
        ipaddress.IPv6Address(addr)
    except ValueError:
        return f"invalid inet6 address {text!r}"
    if plen and not (plen.isdigit() and int(plen) <= 128):
        return f"invalid inet6 prefix length in {text!r}"
    return None


def _inet(text: str) -> bool:
    """A dotted-quad IPv4 address with an optional /prefix length."""
    addr, slash, plen = text.partition("/")
    octets = addr.split(".")
    if len(octets) != 4 or not all(o.isdigit() and int(o) <= 255 for o in octets):
        return False
    return not slash or (plen.isdigit() and int(plen) <= 32)


def check_ifconfig(args: list[str]) -> Problems:
    """ifconfig(8): ifconfig [-j jail] [-kLmn] [-f type:format] interface [create]
    [address_family [address [dest_address]]] [parameters]; ifconfig interface destroy;
    ifconfig -g groupname. `-j jail` (FreeBSD 13.3, 14.0) runs it in the jail's network stack.
    The ND6 flags need the `inet6` keyword; `create` without a unit takes a cloner's name."""
    p = getopt(args, "kLmnaldCuv", "jfgG")
    if p.has("g") and not p.operands:
        return p.problems
    _count(p, 1, None, "operands (interface ...)")
    if not p.operands:
        return p.problems
    name, rest = p.operands[0], p.operands[1:]
    if not re.fullmatch(r"[a-z]+[0-9]*[a-z0-9.]*", name):
        p.problems.append(f"invalid interface name {name!r}")
    if len(name) > 15:
        p.problems.append(f"interface name {name!r} is longer than 15 characters (IFNAMSIZ)")
    if rest[:1] == ["create"] and not (name in CLONERS or re.fullmatch(r"[a-z]+[0-9]+", name)):
        p.problems.append(f"create needs a cloner (bridge, epair) or a unit, not {name!r}")
    af = None
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in ("inet", "inet6", "link", "ether", "lladdr"):
            af = word
            if i + 1 < len(rest) and rest[i + 1] not in IFCONFIG_PARAMS:
                if word in ("inet", "inet6") and (problem := _address(word, rest[i + 1])):
                    p.problems.append(problem)
                i += 1
            i += 1  # a family alone shows the interface's addresses of that family
            continue
        if word not in IFCONFIG_PARAMS:
            p.problems.append(f"unknown ifconfig parameter {word!r}")
            i += 1
            continue
        if word.lstrip("-") in ND6_FLAGS and af != "inet6":
            p.problems.append(f"{word} is an ND6 flag: it needs the inet6 keyword before it")
        if i + IFCONFIG_PARAMS[word] >= len(rest) and IFCONFIG_PARAMS[word]:
            p.problems.append(f"{word} needs a value")
        i += 1 + IFCONFIG_PARAMS[word]
    return p.problems


ROUTE_COMMANDS = ("add", "delete", "change", "get", "monitor", "flush", "show")


def check_route(args: list[str]) -> Problems:
    """route(8): route [-46dnqtv] [-j jail] command [[modifiers] args]; commands add, delete,
    change, get, monitor, flush; modifiers -inet, -inet6, -net, -host, ...; `default` is a
    destination. `-j jail` (FreeBSD 13.3, 14.0) works in the jail's stack."""
    p = getopt(args, "46dnqtv", "j")
    if not p.operands or p.operands[0] not in ROUTE_COMMANDS:
        p.problems.append(f"route needs one of {', '.join(ROUTE_COMMANDS)}, not {p.operands[:1]}")
        return p.problems
    cmd, rest = p.operands[0], p.operands[1:]
    mods = [w for w in rest if w in ("-inet", "-inet6", "-net", "-host", "-link", "-interface", "-iface")]
    af = "inet6" if "-inet6" in mods else "inet"
    plain = [w for w in rest if w not in mods]
    if cmd in ("add", "change"):
        if len(plain) != 2:
            p.problems.append(f"route {cmd} needs a destination and a gateway, got {plain}")
        elif problem := _address(af, plain[1]):
            p.problems.append(f"gateway: {problem}")
    if cmd in ("add", "change", "get", "delete") and plain and plain[0] != "default" and _address(af, plain[0]):
        p.problems.append(f"destination {plain[0]!r} is not an {af} address or 'default'")
    return p.problems


SYSCTLS = {"net.inet.ip.forwarding": ("0", "1"), "net.inet6.ip6.forwarding": ("0", "1"),
           "kern.racct.enable": ()}  # read only: whether rctl works (a boot-time tunable)


def check_sysctl(args: list[str]) -> Problems:
    """sysctl(8): sysctl [-bdeFhiJlNnoqTtWx] [-B bufsize] [-f filename] name[=value] ...; only
    the variables ladle sets are known (inet(4) and inet6(4) forwarding)."""
    p = getopt(args, "AabdeFhiJlNnoqTtWx", "Bf")
    _count(p, 1, None, "variables")
    for op in p.operands:
        name, eq, value = op.partition("=")
        if name not in SYSCTLS:
            p.problems.append(f"unknown or unchecked sysctl {name!r}")
        elif eq and value not in SYSCTLS[name]:
            p.problems.append(f"{name} takes {'|'.join(SYSCTLS[name])}, not {value!r}")
    return p.problems


PFCTL_FLUSH = ("nat", "queue", "ethernet", "rules", "states", "Sources", "info", "Tables", "osfp", "Reset", "all")


def check_pfctl(args: list[str]) -> Problems:
    """pfctl(8): pfctl [-AdeghMmNnOPqRrvz] [-a anchor] [-D macro=value] [-F modifier] [-f file]
    [-i interface] [-K host|network] [-k ...] [-o level] [-p device] [-s modifier]
    [-t table -T command [address ...]] [-x level]; `-f -` reads standard input. Policy: with
    -a, flush only what an anchor holds (nat, rules): `-F all` and `-F states` would clear
    the host's whole state table."""
    p = getopt(args, "AdeghMmNnOPqRrvzS", "aDFfiKkopstTx")
    if not p.opts:
        p.problems.append("pfctl: at least one option must be given")
    for value in p.values("F"):
        full = next((m for m in PFCTL_FLUSH if value and m.startswith(value)), None)
        if full is None:
            p.problems.append(f"unknown -F modifier {value!r}")
        elif full in ("all", "states", "Sources", "info", "Reset"):
            p.problems.append(f"policy: -F {value} flushes host-wide state, not just an anchor's rules")
    for value in p.values("f"):
        if value != "-" and not value.startswith("/"):
            p.problems.append(f"-f takes '-' or an absolute path, not {value!r}")
    for value in p.values("a"):
        if not value or value.startswith("/") or "//" in value:
            p.problems.append(f"invalid anchor {value!r}")
    if p.operands:
        p.problems.append(f"pfctl takes no operands: {p.operands}")
    return p.problems


# pf.conf(5), the statements ladle loads into its anchors: macros, translation (nat, rdr) before
# filtering (pass, block), as pfctl -f requires.
_PF_TOKEN = re.compile(r'"[^"]*"|->|[{}(),!]|[^\s{}(),!"]+')
_PF_AFS = ("inet", "inet6")


def _pf_host(tokens: list[str], i: int, problems: Problems, af: str | None) -> int:
    """One host of pf.conf's `hosts`: `any`, `self`, an address or network, `(if[:0])`, a
    `{ list }`, each optionally negated with '!'; returns the index after it."""
    if i < len(tokens) and tokens[i] == "!":
        i += 1
    if i >= len(tokens):
        problems.append("pf.conf: a host is missing")
        return i
    t = tokens[i]
    if t == "{":
        i += 1
        while i < len(tokens) and tokens[i] != "}":
            if tokens[i] == ",":
                i += 1
                continue
            i = _pf_host(tokens, i, problems, af)
        return i + 1
    if t == "(":
        if i + 2 >= len(tokens) or tokens[i + 2] != ")":
            problems.append("pf.conf: (interface) is not closed")
            return i + 1
        ifname, _, mod = tokens[i + 1].partition(":")
        if not re.fullmatch(r"\$?[A-Za-z][A-Za-z0-9_.-]*", ifname) or mod not in ("", "0", "network", "broadcast",
                                                                                   "peer"):
            problems.append(f"pf.conf: bad interface address ({tokens[i + 1]})")
        return i + 3
    if t in ("any", "self") or t.startswith("$"):
        return i + 1
    import ipaddress
    try:
        net = ipaddress.ip_network(t, strict=False)
    except ValueError:
        problems.append(f"pf.conf: not an address or network: {t!r}")
        return i + 1
    if af and net.version != (4 if af == "inet" else 6):
        problems.append(f"pf.conf: {t} is not an {af} address")
    return i + 1


def _pf_port(tokens: list[str], i: int, problems: Problems) -> int:
    if i < len(tokens) and tokens[i] == "port":
        if i + 1 >= len(tokens) or not (tokens[i + 1].isdigit() and 0 < int(tokens[i + 1]) < 65536):
            problems.append(f"pf.conf: bad port {tokens[i + 1:i + 2]}")
        return i + 2
    return i


def check_pf_rule(line: str) -> tuple[str, Problems]:
    """Check one pf.conf(5) statement of the forms ladle writes; returns its kind (macro,
    translation, filter) and the problems."""
    problems: Problems = []
    if re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]* = "[^"]*"', line):
        return "macro", problems
    tokens = _PF_TOKEN.findall(line)
    if not tokens:
        return "empty", problems
    kind = "translation" if tokens[0] in ("nat", "rdr", "binat") else "filter" \
        if tokens[0] in ("pass", "block") else "unknown"
    if kind == "unknown":
        return kind, [f"pf.conf: unknown or unchecked statement {tokens[0]!r}"]
    i = 1
    if kind == "translation" and i < len(tokens) and tokens[i] == "pass":
        i += 1
    if kind == "filter":
        if tokens[0] == "block" and i < len(tokens) and tokens[i] in ("drop", "return"):
            i += 1
        if i < len(tokens) and tokens[i] in ("in", "out"):
            i += 1
        if i < len(tokens) and tokens[i] == "quick":
            i += 1
    if i < len(tokens) and tokens[i] == "on":
        i += 2 if i + 1 < len(tokens) and tokens[i + 1] != "!" else 3
    af = None
    if i < len(tokens) and tokens[i] in _PF_AFS:
        af = tokens[i]
        i += 1
    if i < len(tokens) and tokens[i] == "proto":
        if i + 1 >= len(tokens) or tokens[i + 1] not in ("tcp", "udp", "icmp", "icmp6"):
            problems.append(f"pf.conf: bad protocol {tokens[i + 1:i + 2]}")
        i += 2
    if i < len(tokens) and tokens[i] == "all":
        i += 1
    else:
        for word in ("from", "to"):
            if i >= len(tokens) or tokens[i] != word:
                problems.append(f"pf.conf: expected {word!r} at {tokens[i:i + 1]} in {line!r}")
                return kind, problems
            i = _pf_port(tokens, _pf_host(tokens, i + 1, problems, af), problems)
    for word in ("tag", "tagged"):
        if i < len(tokens) and tokens[i] == word:
            if i + 1 >= len(tokens) or not re.fullmatch(r"[A-Za-z0-9_]{1,63}", tokens[i + 1]):
                problems.append(f"pf.conf: bad {word}")
            i += 2
    if kind == "translation":
        if tokens[0] in ("nat", "rdr"):
            if i >= len(tokens) or tokens[i] != "->":
                problems.append(f"pf.conf: {tokens[0]} needs '-> address' in {line!r}")
                return kind, problems
            i = _pf_port(tokens, _pf_host(tokens, i + 1, problems, af), problems)
    elif i < len(tokens) and tokens[i] == "keep":
        i += 2
    if i != len(tokens):
        problems.append(f"pf.conf: unexpected {tokens[i:]} in {line!r}")
    return kind, problems


def check_pf_conf(body: list[str]) -> Problems:
    """A ruleset for `pfctl -f -`: each statement checked, and translation before filtering."""
    problems: Problems = []
    seen_filter = False
    for line in body:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind, found = check_pf_rule(line.strip())
        problems += found
        if kind == "filter":
            seen_filter = True
        elif kind == "translation" and seen_filter:
            problems.append(f"pf.conf: translation after filtering (pfctl -f wants them first): {line!r}")
    return problems


MOUNT_OPTIONS = {  # mount(8) -o, mount_nullfs(8) (cache, nocache) and tmpfs(5) options
    "async", "current", "force", "fstab", "late", "noasync", "noatime", "noauto", "noclusterr", "noclusterw",
    "nocover", "noexec", "nosuid", "nosymfollow", "ro", "rdonly", "rw", "sync", "suiddir", "update", "union",
    "multilabel", "acls", "nfsv4acls", "untrusted", "emptydir", "automounted", "snapshot",
    "cache", "nocache",
    "gid", "uid", "mode", "inodes", "size", "maxfilesize", "nomtime", "nonc", "easize", "pgread",
}


def _mount_opts(p: Parsed) -> None:
    for value in p.values("o"):
        for opt in value.split(","):
            if opt.partition("=")[0] not in MOUNT_OPTIONS:
                p.problems.append(f"unknown mount option {opt!r}")


def check_mount(args: list[str]) -> Problems:
    """mount(8): mount [-adflpruvw] [-F fstab] [-o options] [-t fstype] [special | node];
    mount [-dfpruvw] [-o options] [-t fstype] special node"""
    p = getopt(args, "adflpruvw", "Fot")
    _count(p, 0, 2, "operands")
    _mount_opts(p)
    if len(p.operands) == 2:
        _absolute(p, p.operands[1], "mount point")
    return p.problems


def check_mount_nullfs(args: list[str]) -> Problems:
    """mount_nullfs(8): mount_nullfs [-o options] target mount-point"""
    p = getopt(args, "", "o")
    _count(p, 2, 2, "operands (target mount-point)")
    _mount_opts(p)
    for path in p.operands:
        _absolute(p, path, "path")
    return p.problems


def check_umount(args: list[str]) -> Problems:
    """umount(8): umount [-dfNnv] special ... | node ... | fsid ...;
    umount -a | -A [-F fstab] [-fnv] [-h host] [-t type]"""
    p = getopt(args, "dfNnvaA", "Fht")
    if p.has("a") or p.has("A"):
        _count(p, 0, 0, "operands with -a/-A")
    else:
        _count(p, 1, None, "mount points")
    return p.problems


def check_jls(args: list[str]) -> Problems:
    """jls(8): jls [-dhNnqsv] [-j jail] [parameter ...]; jls -c [-d] -j jail"""
    p = getopt(args, "cdhNnqsv", "j")
    for param in p.operands:
        name = param.partition(".")[0] if param.startswith(("meta.", "env.")) else param
        if name not in JAIL_PARAMS and name not in ("meta", "env") and _bool_name(name) is None:
            p.problems.append(f"unknown jail parameter {param!r}")
    return p.problems


FETCH_LONG = {  # fetch(1) long options: name -> takes a value
    "one-file": False, "ipv4-only": False, "ipv6-only": False, "no-redirect": False, "retry": False,
    "buffer-size": True, "bind-address": True, "cert": True, "ca-cert": True, "ca-path": True, "crl": True,
    "direct": False, "force-restart": False, "identity": True, "keep-output": False, "key": True,
    "print-size": False, "passive-portrange-default": False, "no-passive": False, "no-proxy": True,
    "output": True, "passive": False, "quiet": False, "referer": True, "restart": False,
    "require-size": True, "no-mtime": False, "no-sslv3": False, "no-tlsv1": False,
    "no-verify-hostname": False, "no-verify-peer": False, "timeout": True, "user-agent": True,
    "verbose": False, "retry-delay": True, "mirror": False,
}


def check_fetch(args: list[str]) -> Problems:
    """fetch(1): fetch [-146AadFlMmnPpqRrsUv] [-B bytes] [-i file] [-N file] [-o file] [-S bytes]
    [-T seconds] [-w seconds] [--long-option...] URL ..."""
    p = getopt(args, "146AadFlMmnPpqRrsUv", "BiNoSTwhfc", FETCH_LONG)
    if not p.has("h"):
        _count(p, 1, None, "URLs")
        for url in p.operands:
            if not re.match(r"(https?|ftp|file)://\S+$", url):
                p.problems.append(f"not a URL fetch(3) understands: {url!r}")
    return p.problems


def check_sha256(args: list[str]) -> Problems:
    """md5(1) (sha256): sha256 [-pqrtx] [-c string] [-s string] [file ...]"""
    p = getopt(args, "pqrtx", "cs")
    return p.problems


TAR_LONG = {  # bsdtar(1) long options: name -> takes a value
    "acls": False, "auto-compress": False, "block-size": True, "bunzip2": False, "bzip": False, "bzip2": False,
    "cd": True, "check-links": False, "chroot": False, "clear-nochange-fflags": False, "compress": False,
    "confirmation": False, "dereference": False, "directory": True, "exclude": True, "exclude-from": True,
    "exclude-vcs": False, "extract": False, "fast-read": False, "fflags": False, "file": True,
    "files-from": True, "format": True, "gid": True, "gname": True, "gunzip": False, "gzip": False,
    "help": False, "ignore-zeros": False, "include": True, "insecure": False, "interactive": False,
    "keep-newer-files": False, "keep-old-files": False, "list": False, "lrzip": False, "lz4": False,
    "lzma": False, "lzop": False, "modification-time": False, "newer": True, "newer-mtime": True,
    "newer-mtime-than": True, "newer-than": True, "no-acls": False, "no-fflags": False,
    "no-recursion": False, "no-safe-writes": False, "no-same-owner": False, "no-same-permissions": False,
    "no-xattrs": False, "nodump": False, "norecurse": False, "null": False, "numeric-owner": False,
    "older": True, "older-mtime": True, "older-mtime-than": True, "older-than": True,
    "one-file-system": False, "options": True, "passphrase": True, "posix": False,
    "preserve-permissions": False, "read-full-blocks": False, "safe-writes": False, "same-owner": False,
    "strip-components": True, "to-stdout": False, "totals": False, "uid": True, "uname": True,
    "uncompress": False, "unlink": False, "unlink-first": False, "use-compress-program": True,
    "verbose": False, "version": False, "xattrs": False, "xz": False, "zstd": False,
    "absolute-paths": False, "create": False, "append": False, "update": False,
}
TAR_UNSAFE = {"P": "-P (--absolute-paths) disables the '..', absolute path and symlink checks",
              "--absolute-paths": "--absolute-paths disables the '..', absolute path and symlink checks",
              "U": "-U (--unlink-first) removes symlinks in the way instead of refusing",
              "--unlink": "--unlink removes symlinks in the way instead of refusing",
              "--unlink-first": "--unlink-first removes symlinks in the way instead of refusing"}


def check_tar(args: list[str]) -> Problems:
    """bsdtar(1): tar {-c | -r | -u | -t | -x} [options] [patterns]; options from OPTIONS."""
    p = getopt(args, "crtuxaBHhJjkLlmnOoPpqSUvwyZz", "bCfIsTX", TAR_LONG)
    modes = [f for f, _ in p.opts if f in "crtux" and len(f) == 1]
    if len(modes) != 1:
        p.problems.append(f"exactly one mode of -c, -r, -t, -u, -x is needed, got {modes}")
    if "x" in modes:
        for f, _ in p.opts:
            if f in TAR_UNSAFE:
                p.problems.append(f"policy: {TAR_UNSAFE[f]}")
        if not p.has("f"):
            p.problems.append("policy: give the archive with -f")
    return p.problems


# zfs(8) and its subcommand pages (OpenZFS 2.2): subcommand -> (flags, flags with a value,
# minimum operands, maximum operands or None).
ZFS_SUBCOMMANDS: dict[str, tuple[str, str, int, int | None]] = {
    "create": ("Ppnuvs", "obV", 1, 1),            # zfs-create(8)
    "destroy": ("Rdfnprv", "", 1, 1),              # zfs-destroy(8)
    "snapshot": ("r", "o", 1, None),               # zfs-snapshot(8)
    "snap": ("r", "o", 1, None),
    "rollback": ("Rfr", "", 1, 1),                 # zfs-rollback(8)
    "clone": ("pu", "o", 2, 2),                    # zfs-clone(8)
    "promote": ("", "", 1, 1),                     # zfs-promote(8)
    "rename": ("fpur", "", 2, 2),                  # zfs-rename(8)
    "list": ("rHpj", "dosSt", 0, None),            # zfs-list(8)
    "set": ("u", "", 2, None),                     # zfs-set(8)
    "get": ("rHp", "dost", 1, None),               # zfs-get(8)
    "inherit": ("rS", "", 2, None),                # zfs-inherit(8)
    "send": ("DLPVbcehnpsvwR", "IitSX", 0, 1),     # zfs-send(8)
    "receive": ("FhMnsuvdeAc", "ox", 1, 1),        # zfs-receive(8)
    "recv": ("FhMnsuvdeAc", "ox", 1, 1),
    "mount": ("Oflva", "o", 0, 1),                 # zfs-mount(8)
    "unmount": ("fua", "", 0, 1),
    "umount": ("fua", "", 0, 1),
}
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*(@[A-Za-z0-9_.:-]+)?")


def check_zfs(args: list[str]) -> Problems:
    if not args:
        return ["zfs needs a subcommand"]
    sub = ZFS_SUBCOMMANDS.get(args[0])
    if sub is None:
        return [f"unknown or unchecked zfs subcommand {args[0]!r}"]
    flags, with_arg, lo, hi = sub
    p = getopt(args[1:], flags, with_arg, {"redact": True, "json-int": False} if args[0] in ("send", "list")
               else None)
    if args[0] in ("send",) and p.has("t"):
        lo, hi = 0, 0
    if args[0] in ("mount", "unmount", "umount") and p.has("a"):
        lo, hi = 0, 0
    _count(p, lo, hi, f"operands for zfs {args[0]}")
    for value in p.values("o"):
        if args[0] not in ("list", "get") and "=" not in value:
            p.problems.append(f"-o takes property=value, not {value!r}")
    operands = p.operands
    if args[0] == "set":
        props = [o for o in operands if "=" in o]
        if not props:
            p.problems.append("zfs set needs property=value")
        operands = operands[len(props):]
    elif args[0] in ("get", "inherit"):  # property list first, then datasets
        operands = operands[1:]
    elif args[0] in ("mount", "unmount", "umount"):
        operands = [o for o in operands if not o.startswith("/")]
    for ds in operands:
        if not _DATASET.fullmatch(ds):
            p.problems.append(f"not a dataset or snapshot name: {ds!r}")
    if args[0] in ("rollback", "clone") and operands and "@" not in operands[0]:
        p.problems.append(f"zfs {args[0]} needs a snapshot first, not {operands[0]!r}")
    if args[0] in ("snapshot", "snap") and any("@" not in o for o in operands):
        p.problems.append("zfs snapshot takes dataset@name")
    return p.problems


# Dispatch -----------------------------------------------------------------------------------------

CHECKERS: dict[str, Callable[[list[str]], Problems]] = {
    "jail": check_jail, "jexec": check_jexec, "/usr/sbin/jexec": check_jexec, "jls": check_jls, "mount": check_mount,
    "mount_nullfs": check_mount_nullfs, "umount": check_umount, "zfs": check_zfs, "fetch": check_fetch,
    "sha256": check_sha256, "tar": check_tar, "mkdir": check_mkdir, "rmdir": check_rmdir, "rm": check_rm,
    "cat": check_cat, "chflags": check_chflags, "uname": check_uname, "cp": check_cp, "test": check_test,
    "find": check_find, "chmod": check_chmod, "ifconfig": check_ifconfig, "route": check_route,
    "sysctl": check_sysctl, "pfctl": check_pfctl, "env": lambda args: check_env(args, inside=False),
    "rctl": check_rctl, "cpuset": check_cpuset,
}
INSIDE = {"env": check_env, "sh": check_sh, "cp": check_cp, "mkdir": check_mkdir, "ifconfig": check_ifconfig}
# Where the base system installs them (hier(7)), for commands run inside a jail by full path.
INSIDE_PATHS = {"/usr/bin/env": "env", "/bin/sh": "sh", "/bin/cp": "cp", "/bin/mkdir": "mkdir",
                "/sbin/ifconfig": "ifconfig"}


def check_argv(argv: list[str], *, inside: bool = False) -> Problems:
    """Check one command; `inside` for a command run in a jail (by jexec or env)."""
    if not argv:
        return ["empty command"]
    if inside:
        cmd = INSIDE_PATHS.get(argv[0], argv[0] if "/" not in argv[0] else "")
        if cmd in INSIDE:
            return INSIDE[cmd](argv[1:])
        return []  # the pot's own command: not ours to check
    checker = CHECKERS.get(argv[0])
    if checker is None:
        return [f"no checker for {argv[0]!r}"]
    return checker(argv[1:])


def _reads_stdin(argv: list[str], cmd: str) -> bool:
    return argv[:1] == [cmd] and "-f" in argv and argv[argv.index("-f") + 1:][:1] == ["-"]


def check_line(line: str, stdin: list[str] | None = None) -> Problems:
    try:
        argv = shlex.split(line)
    except ValueError as e:
        return [f"does not parse as a shell line: {e}"]
    problems = check_argv(argv)
    if stdin is not None:
        if _reads_stdin(argv, "jail"):
            problems += check_jail_conf(stdin)
        elif _reads_stdin(argv, "pfctl"):
            problems += check_pf_conf(stdin)
        else:
            problems.append("a here-document is only expected for jail -f -, pfctl -f - and cat > FILE")
    return problems


def untoken(text: str) -> str:
    """A copy's random token (in its stage and temporary directory) as TOKEN, for golden files."""
    return re.sub(r"\b(copy|ladle-copy-in|ladle-copy-out)\.[0-9a-f]{8}\b", r"\1.TOKEN", text)


def check_rendering(lines: list[str]) -> Problems:
    """Check every command of a rendering; '#' lines are comments, `CMD <<'EOF'` feeds stdin."""
    problems: Problems = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.search(r"\s<<'([A-Z]+)'$", line)
        body = None
        if m:
            end = lines.index(m.group(1), i) if m.group(1) in lines[i:] else len(lines)
            body, i = lines[i:end], end + 1
            line = line[:m.start()]
            if line.startswith("cat > "):  # a file written whole (WriteFile)
                continue
        problems += [f"{line}: {p}" for p in check_line(line, body)]
    return problems
