#!/usr/bin/env python3
"""The narrow task of docs/real-model.md: rewrite a casual message in a formal register.

Each sample is a template filled with slots; every slot has a casual and a formal spelling
(contractions spelled out, slang and abbreviations replaced, the opener and the emoticons
dropped, a capital first letter and a full stop), so the formal rewrite of each message is one
exact string and the held-out metric can be exact match. Deterministic: the same seed writes the
same files.

    python3 tools/real_model/formal_task.py OUT_DIR [--train 480] [--test 120] [--seed 0]

writes OUT_DIR/train.jsonl and OUT_DIR/test.jsonl ({"messages": [user, assistant]} lines) and
OUT_DIR/test_answers.jsonl ({"question", "answer"}: the user text and the exact rewrite). No
test message appears in train.jsonl.
"""

import argparse
import json
import os
import random

INSTRUCTION = "Rewrite this message in a formal tone: "

OPENERS = [("", ""), ("hey, ", ""), ("so ", ""), ("ok so ", ""), ("btw ", ""), ("yo, ", "")]
ENDINGS = [("", "."), ("!!", "."), (" lol", "."), ("...", "."), ("!", "."), (" :)", "."),
           (".", ".")]
I_WILL = [("i'm gonna", "I am going to"), ("im gonna", "I am going to"),
          ("I'm gonna", "I am going to"), ("i wanna", "I want to"), ("I gotta", "I have to"),
          ("i gotta", "I have to")]
WE_CANT = [("we can't", "We cannot"), ("we cant", "We cannot"), ("we won't", "We will not")]
VERBS = [("check out", "review"), ("fix", "resolve"), ("look at", "examine"), ("send", "send"),
         ("finish", "complete"), ("grab", "collect"), ("redo", "revise"),
         ("sort out", "organize")]
VERBING = [("checking out", "reviewing"), ("fixing", "resolving"), ("sending", "sending"),
           ("finishing", "completing"), ("sorting out", "organizing"),
           ("looking at", "examining")]
OBJECTS = [("report", "report"), ("stuff", "materials"), ("doc", "document"),
           ("numbers", "figures"), ("slides", "slides"), ("code", "code"),
           ("contract", "contract"), ("budget", "budget"), ("invoice", "invoice"),
           ("pics", "photographs"), ("info", "information"), ("specs", "specifications")]
UNCOUNTABLE = ("stuff", "code", "info")
WHEN = [("tmrw", "tomorrow"), ("asap", "as soon as possible"), ("later", "later"),
        ("next wk", "next week"), ("tonight", "this evening"), ("rn", "immediately"),
        ("by fri", "by Friday"), ("today", "today")]
ADJ = [("ready", "ready"), ("done", "complete"), ("ok", "acceptable"),
       ("awesome", "excellent"), ("bad", "inadequate"), ("right", "correct"),
       ("messed up", "incorrect")]
ADV = [("super", "very"), ("kinda", "somewhat"), ("pretty", "fairly"), ("totally", "entirely"),
       ("really", "truly")]
IS_NOT = [("isn't", "is not"), ("isnt", "is not"), ("ain't", "is not")]
THANKS = [("thx", "Thank you"), ("thanks", "Thank you"), ("ty", "Thank you")]
PLEASE = [("pls", "Please"), ("plz", "Please"), ("please", "Please")]
YOU_GOTTA = [("u gotta", "You have to"), ("you gotta", "You have to"),
             ("u need to", "You need to")]
YOUR = [("ur", "your"), ("your", "your")]
YEAH = [("yeah", "Yes"), ("yep", "Yes"), ("nope", "No"), ("nah", "No")]
IT_IS = [("it's", "it is"), ("its", "it is")]
THEY_WILL = [("they're gonna", "They are going to"), ("theyre gonna", "They are going to"),
             ("they wanna", "They want to"), ("they gotta", "They have to")]
A_BUNCH = [("a bunch of", "several"), ("a ton of", "many"), ("lots of", "many")]


def pick(rng, pairs):
    return pairs[rng.randrange(len(pairs))]


def sample(rng):
    """(casual, formal) for one random template."""
    o, e = pick(rng, OPENERS), pick(rng, ENDINGS)
    t = rng.randrange(8)
    v, ob, w = pick(rng, VERBS), pick(rng, OBJECTS), pick(rng, WHEN)
    if t == 0:
        parts = [pick(rng, I_WILL), v, ("the", "the"), ob, w]
    elif t == 1:
        parts = [pick(rng, PLEASE), v, ("the", "the"), ob, w]
    elif t == 2:
        parts = [pick(rng, WE_CANT), v, ("the", "the"), ob, w]
    elif t == 3:
        parts = [pick(rng, THANKS), ("for", "for"), pick(rng, VERBING), ("the", "the"), ob]
    elif t == 4:
        parts = [("the", "The"), ob, pick(rng, IS_NOT), pick(rng, ADJ)]
    elif t == 5:
        y, i = pick(rng, YEAH), pick(rng, IT_IS)
        parts = [(y[0] + ",", y[1] + ","), i, pick(rng, ADV), pick(rng, ADJ)]
    elif t == 6:
        parts = [pick(rng, YOU_GOTTA), v, pick(rng, YOUR), ob, w]
    else:
        ob = pick(rng, [x for x in OBJECTS if x[0] not in UNCOUNTABLE])
        parts = [pick(rng, THEY_WILL), v, pick(rng, A_BUNCH),
                 (ob[0] if ob[0].endswith("s") else ob[0] + "s",
                  ob[1] if ob[1].endswith("s") else ob[1] + "s"), w]
    casual = " ".join(p[0] for p in parts)
    formal = " ".join(p[1] for p in parts)
    casual = o[0] + casual + e[0]
    formal = formal[:1].upper() + formal[1:] + e[1]
    return casual, formal


def conversation(casual, formal):
    return {"messages": [{"role": "user", "content": INSTRUCTION + casual},
                         {"role": "assistant", "content": formal}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=480)
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seen, test, train = set(), [], []
    while len(test) < args.test:
        c, f = sample(rng)
        if c not in seen:
            seen.add(c)
            test.append((c, f))
    while len(train) < args.train:
        c, f = sample(rng)
        if c not in seen:
            seen.add(c)
            train.append((c, f))
    os.makedirs(args.out, exist_ok=True)

    def write(name, rows):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")

    write("train.jsonl", [conversation(c, f) for c, f in train])
    write("test.jsonl", [conversation(c, f) for c, f in test])
    write("test_answers.jsonl", [{"question": INSTRUCTION + c, "answer": f} for c, f in test])
    print("wrote %d train and %d test samples to %s" % (len(train), len(test), args.out))


if __name__ == "__main__":
    main()
