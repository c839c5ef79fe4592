"""`python app.py`: the gptbuilder store (Discover, Chat, Create) on the GPTs in ./gpts (Hugging Face Spaces convention)."""

from gptbuilder.builder import MAX_UPLOAD_BYTES
from gptbuilder.catalog import load_catalog
from gptbuilder.settings import Settings
from gptbuilder.store import Store
from gptbuilder.ui import build_ui, store_css, store_theme

if __name__ == "__main__":
    settings = Settings.from_env()
    store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
    build_ui(store).queue().launch(
        server_name="127.0.0.1", theme=store_theme(), css=store_css(), max_file_size=MAX_UPLOAD_BYTES
    )
