"""Python programs started as forks of a warm interpreter that has imported their libraries already
(:class:`.interpreter.WarmInterpreter`), and the processes they spawn as forks too (:mod:`.spawn`).

Imports nothing: the spawn launcher (:mod:`.launcher`) runs on Python's standard library alone."""
