"""The interactive side of the book, apart from the maths it shows.

- `explorer`: explorer rendering (controls above a figure redrawn in place, sent as a PNG);
- `checks`: the self-check framework every exercise uses (`self_check`, `as_number`, ...);
- `frames`: every picture an explorer can show, rendered for the static site (no kernel);
- `ch00` ... `ch14`: each chapter's explorers and self-checks. The maths and models they show live
  in the topic modules of `helpers` (`pooling`, `attention`, `transformer`, `llm`, ...).
"""
