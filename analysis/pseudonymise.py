"""Personal data stops here: PII columns are dropped and resp_id becomes a keyed hash.

resp_key = HMAC-SHA256(key, resp_id) in hex. The key is never in the
repository: it comes from the environment variable SCILIT_PSEUDONYM_KEY or
from .secrets/pseudonym.key (git-ignored), which is created with random
bytes on first use. Keep that file: the same key gives the same resp_key in
every year and every run, so later linkage stays possible without the ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import ROOT
from .dictionary import load_dictionary
from .errors import UserError

log = logging.getLogger(__name__)

KEY_ENV = "SCILIT_PSEUDONYM_KEY"
KEY_FILE = ROOT / ".secrets" / "pseudonym.key"


def pseudonym_key(path: Path | None = None) -> bytes:
    """The HMAC key: env SCILIT_PSEUDONYM_KEY, else the key file (created when absent)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    path = Path(path) if path is not None else KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.warning("no pseudonymisation key found: created %s with a new random key. Keep it "
                    "outside the repository and back it up; without it resp_key cannot be "
                    "reproduced. Set %s to use another key.", path, KEY_ENV)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise UserError(f"pseudonymisation key file {path} is empty; expected the key written on first "
                        f"use (restore it from your backup, or set {KEY_ENV})")
    return key.encode("utf-8")


def resp_keys(ids: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 hex digest of each id (missing stays missing).

    HMAC is computed from copies of the pre-keyed inner and outer SHA-256
    states (RFC 2104), which is about twice as fast as hmac.digest per call.
    """
    block = 64
    k = hashlib.sha256(key).digest() if len(key) > block else key
    k = k.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    values = ids.to_numpy(dtype=object, na_value=None)
    missing = np.array([v is None for v in values], dtype=bool)
    digests = []
    for v in values:
        h = inner.copy()
        h.update(b"" if v is None else str(v).encode("utf-8"))
        o = outer.copy()
        o.update(h.digest())
        digests.append(o.digest())
    hexed = b"".join(digests).hex().encode("ascii")
    n = len(values)
    offsets = np.arange(0, 64 * n + 1, 64, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexed))
    if missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.large_string()), arr)
    return pd.Series(pd.array(arr, dtype="str"), index=ids.index, name="resp_key")


def pseudonymise(df: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Drop PII (name, phone, ID card, address) and resp_id; add resp_key after `row`."""
    pii = [c for c in load_dictionary().pii if c in df.columns]
    out = df.drop(columns=[*pii, "resp_id"])
    out.insert(1 if "row" in out.columns else 0, "resp_key", resp_keys(df["resp_id"], key))
    if pii:
        log.info("dropped personal data columns: %s", ", ".join(pii))
    return out


# --- personal data where a code is expected (stratum, PSU) -------------------------------------
# These columns are kept in the clean table, so a value shaped like a person's name, phone number,
# ID-card number or address is refused there; codes and place names (the plan's divisions and
# zones, and words ending in a place suffix such as 区 or 村) pass.

PHONE = re.compile(r"(?:\+?86)?1[3-9]\d{9}|0\d{2,3}-?\d{7,8}")  # mobile, or landline with area code
ID_CARD = re.compile(r"\d{17}[\dXx]|\d{15}")
HOUSE_NUMBER = re.compile(r"\d+\s*(?:号|栋|幢|室|楼|单元|弄)")
CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
SEPARATORS = re.compile(r"[\s\-_./()]+")
NAME_CHARS = re.compile(r"[A-Za-z\s_.\-]+")
NAME_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
PLACE_KEY = re.compile(r"[\W_\d]+")  # harmonise.value_key without the digits: 吴川-03 -> 吴川
SURNAMES = set("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程"
               "魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付傅方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛"
               "郝顾龚邵万覃武钱戴严莫孔向常汤康易乔赖文施洪辛柯庄詹关麦古欧植揭符")
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "司徒",
                     "夏侯", "长孙", "宇文", "轩辕", "端木", "南宫", "独孤", "申屠", "澹台")
PLACE_SUFFIXES = tuple("区县市州镇乡村街道社居委组队片岛湾港山岭坡湖河江海园苑庄屯寨围场路巷里坊城所站点层口"
                       ) + ("城镇", "乡村")
HONORIFICS = ("先生", "女士", "小姐", "老师", "同志", "师傅")
PINYIN_SURNAMES = frozenset(
    "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin gao luo zheng liang xie song "
    "tang han feng deng cao peng zeng xiao tian dong yuan pan cai jiang yu du ye cheng wei su lv lu ding ren "
    "yao shen zhong cui tan fan liao shi jin jia xia fu fang zou xiong bai meng qin qiu hou yin xue yan duan "
    "lei long tao mao hao gu gong shao wan qian dai mo kong xiang chang kang yi qiao lai wen hong xin ke "
    "zhuang zhan guan mai ou ouyang sima shangguan zhuge situ dongfang".split())
PINYIN_SYLLABLE = re.compile(
    r"(?:[bpmfdtnlgkhjqxrzcsyw]|zh|ch|sh)(?:iang|iong|uang|ang|eng|ing|ong|ian|iao|uai|uan|ai|ei|ao|ou|an|en"
    r"|in|un|ia|ie|iu|ua|uo|ui|ue|ve|a|o|e|i|u|v)|ang|eng|ai|ei|ao|ou|an|en|er|a|o|e")


def _given_name(token: str, syllables: int = 2) -> bool:
    """One or two pinyin syllables (a given name: 'wei', 'xiaoming')."""
    if not token:
        return True
    return syllables > 0 and any(PINYIN_SYLLABLE.fullmatch(token, 0, k) and _given_name(token[k:], syllables - 1)
                                 for k in range(1, len(token) + 1))


def _pinyin_name(text: str) -> bool:
    """'Zhang Wei', 'ZHANG_Wei', 'ZhangWei', 'wei.zhang', 'Ouyang Xiaoming': 2-3 alphabetic parts, one at
    either end a pinyin surname, the others given-name syllables. One run of letters ('Xiashan') is a place."""
    if not NAME_CHARS.fullmatch(text):
        return False
    parts = [p.lower() for p in NAME_PART.findall(text)]
    if not 2 <= len(parts) <= 3:
        return False
    return any(parts[k] in PINYIN_SURNAMES and all(p and _given_name(p) for j, p in enumerate(parts) if j != k)
               for k in (0, len(parts) - 1))


def _chinese_name(run: str) -> bool:
    """A surname and a two-character given name (or 先生/女士 after a surname), and not a place name.

    A surname and one character (王海, 黄略, 吴阳) is not judged: as many towns and villages are written
    that way (黄略 and 吴阳 are towns of the demo city) as people, and refusing a survey file over a
    village's name would stop the year's run with nothing the user could do about it.
    """
    if run.endswith(HONORIFICS) and run[:1] in SURNAMES | {s[0] for s in COMPOUND_SURNAMES}:
        return True
    surname = 2 if run.startswith(COMPOUND_SURNAMES) else 1 if run[:1] in SURNAMES else 0
    return bool(surname) and len(run) == surname + 2 and not run.endswith(PLACE_SUFFIXES)


def personal_kind(value: str, places: frozenset[str] | set[str] = frozenset()) -> str | None:
    """What personal data `value` (a stratum or PSU code, NFKC text) looks like, or None for a code.

    `places` are matching keys (harmonise.value_key) of names that are never personal: the plan's
    divisions, their aliases and management zones.
    """
    text = value.strip()
    bare = SEPARATORS.sub("", text)
    if PHONE.fullmatch(bare):
        return "a phone number"
    if ID_CARD.fullmatch(bare):
        return "an ID-card number"
    runs = CJK_RUN.findall(text)
    if not runs:  # Latin letters, digits and separators only (most codes): a pinyin name or a code
        return "a personal name" if _pinyin_name(text) and PLACE_KEY.sub("", text.lower()) not in places else None
    if HOUSE_NUMBER.search(text):
        return "an address"
    if PLACE_KEY.sub("", text.lower()) in places:
        return None
    return "a personal name" if any(_chinese_name(run) for run in runs if run not in places) else None
