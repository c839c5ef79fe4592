"""`python app.py`: the gptbuilder chat page on the GPTs in ./gpts (Hugging Face Spaces convention)."""

from gptbuilder.settings import Settings
from gptbuilder.store import Store
from gptbuilder.ui import build_ui

if __name__ == "__main__":
    settings = Settings.from_env()
    build_ui(Store(settings.gpts_dir)).launch(server_name="127.0.0.1")
