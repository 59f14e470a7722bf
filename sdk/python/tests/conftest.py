"""Unit tests of the SDK that need no server: types, presets, ignore rules, the error table."""
