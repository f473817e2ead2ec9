"""Delivery worker: `python worker.py [--burst]` (settings from the environment / .env)."""

from smtp.delivery.runner import main

if __name__ == "__main__":
    main()
