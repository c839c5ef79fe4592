"""`python app.py`: the gptbuilder store (Discover, Chat, Create) on the GPTs in ./gpts (Hugging Face Spaces convention)."""

from gptbuilder.builder import MAX_UPLOAD_BYTES
from gptbuilder.catalog import load_catalog
from gptbuilder.settings import Settings
from gptbuilder.store import Store
from gptbuilder.ui import build_ui, store_css, store_theme


def main() -> None:
    """Launch the store on 127.0.0.1 (GRADIO_SERVER_PORT picks the port, default 7860) and serve until Ctrl-C."""
    settings = Settings.from_env()
    store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
    demo = build_ui(store).queue()
    # quiet: Gradio would advise `share=True`, a public tunnel to this machine that the store never wants
    demo.launch(
        server_name="127.0.0.1",
        share=False,
        quiet=True,
        prevent_thread_lock=True,
        theme=store_theme(),
        css=store_css(),
        max_file_size=MAX_UPLOAD_BYTES,
    )
    print(f"gptbuilder store on {demo.local_url} — GPTs from {settings.gpts_dir.resolve()}; Ctrl-C stops it", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
