"""odradek verify: runs a workload under injected faults and measures loss, duplicates and order.

So far: the checker (:mod:`odradek.verify.checker`), which judges a history against written definitions.
"""
