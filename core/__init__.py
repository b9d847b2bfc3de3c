"""Pure, Streamlit-free logic of Compression Lens: data, training, compression,
measurement, attribution and figures."""
