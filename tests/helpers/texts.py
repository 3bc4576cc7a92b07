"""Real text for the data tests: public-domain Chinese and English prose, a controlled
near-duplicate of a text (`edit_words`), and the data stage's small mixed inputs built from them
(`make_inputs`)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from lmforge.config.schema import SourceConfig

# 陶渊明《桃花源记》(421 CE), public domain.
TAOHUAYUAN = (
    "晋太元中，武陵人捕鱼为业。缘溪行，忘路之远近。忽逢桃花林，夹岸数百步，中无杂树，芳草鲜美，落英缤纷。"
    "渔人甚异之，复前行，欲穷其林。林尽水源，便得一山，山有小口，仿佛若有光。便舍船，从口入。"
    "初极狭，才通人。复行数十步，豁然开朗。土地平旷，屋舍俨然，有良田、美池、桑竹之属。阡陌交通，鸡犬相闻。"
    "其中往来种作，男女衣着，悉如外人。黄发垂髫，并怡然自乐。见渔人，乃大惊，问所从来。具答之。"
    "便要还家，设酒杀鸡作食。村中闻有此人，咸来问讯。自云先世避秦时乱，率妻子邑人来此绝境，不复出焉，"
    "遂与外人间隔。问今是何世，乃不知有汉，无论魏晋。此人一一为具言所闻，皆叹惋。余人各复延至其家，"
    "皆出酒食。停数日，辞去。此中人语云：“不足为外人道也。”既出，得其船，便扶向路，处处志之。"
    "及郡下，诣太守，说如此。太守即遣人随其往，寻向所志，遂迷，不复得路。南阳刘子骥，高尚士也，闻之，"
    "欣然规往。未果，寻病终。后遂无问津者。\n"
)

# 鲁迅《故乡》(1921) opening, public domain in China since 1987.
GUXIANG = (
    "我冒了严寒，回到相隔二千余里，别了二十余年的故乡去。时候既然是深冬；渐近故乡时，天气又阴晦了，"
    "冷风吹进船舱中，呜呜的响，从篷隙向外一望，苍黄的天底下，远近横着几个萧索的荒村，没有一些活气。"
    "我的心禁不住悲凉起来了。阿！这不是我二十年来时时记得的故乡？我所记得的故乡全不如此。"
    "我的故乡好得多了。但要我记起他的美丽，说出他的佳处来，却又没有影像，没有言辞了。仿佛也就如此。"
    "于是我自己解释说：故乡本也如此，——虽然没有进步，也未必有如我所感的悲凉，这只是我自己心情的改变罢了，"
    "因为我这次回乡，本没有什么好心绪。\n"
)

# Jane Austen, Pride and Prejudice (1813), chapter 1, public domain.
AUSTEN = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
    "in want of a wife. However little known the feelings or views of such a man may be on his first "
    "entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that "
    "he is considered the rightful property of some one or other of their daughters. \"My dear Mr. Bennet,\" "
    "said his lady to him one day, \"have you heard that Netherfield Park is let at last?\" Mr. Bennet "
    "replied that he had not. \"But it is,\" returned she; \"for Mrs. Long has just been here, and she told "
    "me all about it.\" Mr. Bennet made no answer. \"Do you not want to know who has taken it?\" cried his "
    "wife impatiently. \"You want to tell me, and I have no objection to hearing it.\" This was invitation "
    "enough.\n"
)

# Herman Melville, Moby-Dick (1851), chapter 1, public domain.
MELVILLE = (
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
    "and nothing particular to interest me on shore, I thought I would sail about a little and see the "
    "watery part of the world. It is a way I have of driving off the spleen and regulating the circulation. "
    "Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my "
    "soul; whenever I find myself involuntarily pausing before coffin warehouses, and bringing up the rear "
    "of every funeral I meet; and especially whenever my hypos get such an upper hand of me, that it "
    "requires a strong moral principle to prevent me from deliberately stepping into the street, and "
    "methodically knocking people's hats off, then, I account it high time to get to sea as soon as I can.\n"
)


def edit_words(text: str, fraction: float, seed: int) -> str:
    """Replace a fraction of the words by other words (controlled near-duplicate)."""
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


def make_inputs(root: Path) -> list[SourceConfig]:
    """Two sources under `root`: a folder of .txt files (an exact and a near duplicate, a GB18030
    file, one too short) and a .jsonl.gz of records (one with no text, one broken line); 10 records."""
    texts = root / "texts"
    texts.mkdir(parents=True)
    (texts / "austen.txt").write_text(AUSTEN * 2, encoding="utf-8")
    (texts / "austen_copy.txt").write_text((AUSTEN * 2).replace("  ", " "), encoding="utf-8")
    (texts / "melville.txt").write_text(MELVILLE * 2 + "Write to ishmael@pequod.org for more.\n", encoding="utf-8")
    (texts / "taohua.txt").write_bytes((TAOHUAYUAN * 2).encode("gb18030"))
    (texts / "taohua_edit.txt").write_text((TAOHUAYUAN * 2).replace("桃花林", "梨花林", 1), encoding="utf-8")
    (texts / "short.txt").write_text("Too short.", encoding="utf-8")
    rows = [{"id": "g1", "text": GUXIANG * 2, "label": "zh"}, {"id": "m1", "text": edit_words(MELVILLE * 3, 0.3, 1)},
            {"id": "x", "text": None}]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{broken\n"
    (root / "recs.jsonl.gz").write_bytes(gzip.compress(body.encode()))
    return [SourceConfig(path=str(texts), name="texts"), SourceConfig(path=str(root / "recs.jsonl.gz"), name="recs")]
