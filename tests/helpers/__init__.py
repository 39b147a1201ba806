"""Helpers shared by the test modules: pages (AppTest), browser (Chromium), runs and files."""
