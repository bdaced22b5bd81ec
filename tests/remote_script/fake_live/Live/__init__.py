"""A fake of Ableton Live 12's `Live` module for tests: the classes a drum Remote Script touches.

Every public name mirrors tests/remote_script/api_docs/live12-api-extract.txt (a test checks this); the rules
Live enforces (main thread only, no changes from listeners, undo steps) live in `_lom`.
Put this folder on sys.path and `import Live` finds it, as a Remote Script does inside Live.
"""

from Live import Clip, ClipSlot, MidiMap, Scene, Song, Track

__all__ = ["Clip", "ClipSlot", "MidiMap", "Scene", "Song", "Track"]
