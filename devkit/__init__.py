"""Development kit: test harnesses and fixture homes (not shipped in the wheel)."""
