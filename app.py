"""`python app.py`: the gptbuilder chat page on the GPTs in ./gpts (Hugging Face Spaces convention)."""

from gptbuilder.catalog import load_catalog
from gptbuilder.settings import Settings
from gptbuilder.store import Store
from gptbuilder.ui import build_ui

if __name__ == "__main__":
    settings = Settings.from_env()
    store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
    build_ui(store).launch(server_name="127.0.0.1")
