"""Put ai-edge-quantizer's external weight buffers back inside the flatbuffer.

Why: ai-edge-quantizer 0.10.0 writes a model whose constant data is 256 KiB or
more with the weights *after* the flatbuffer (``Buffer.offset``/``size``, the
format for models over 2 GB). LiteRT reads that; TensorFlow Lite Micro runs it
but its arena grows by the weights (measured on MLPerf Tiny's AD autoencoder:
270,736 B instead of 4,640 B), and a firmware that embeds the file as a C array
expects weights inline. The rewrite uses the LiteRT flatbuffer schema (public,
``ai_edge_litert.schema_py_generated``) and aligns every buffer to 16 bytes, as
the TFLite converter does.
"""

from __future__ import annotations

from ai_edge_litert import schema_py_generated as schema

_ALIGN = 16
_IDENTIFIER = b"TFL3"


def has_external_buffers(data: bytes) -> bool:
    model = schema.Model.GetRootAsModel(data, 0)
    return any(model.Buffers(i).Offset() > 1 for i in range(model.BuffersLength()))


def inline_buffers(data: bytes) -> bytes:
    """The same model with every buffer's bytes inside the flatbuffer (unchanged if none is outside)."""
    import flatbuffers
    import numpy as np

    if not has_external_buffers(data):
        return data
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    buffers = []
    for buf in model.buffers:
        inline = _AlignedBuffer()
        if buf.offset > 1:
            inline.data = np.frombuffer(data[buf.offset:buf.offset + buf.size], dtype=np.uint8)
        else:
            inline.data = buf.data
        buffers.append(inline)
    model.buffers = buffers
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


class _AlignedBuffer(schema.BufferT):
    """A ``BufferT`` whose data vector starts on a 16-byte boundary (offset and size 0: inline)."""

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object API's name
        data = None
        if self.data is not None and len(self.data):
            raw = bytes(bytearray(self.data))
            builder.StartVector(1, len(raw), _ALIGN)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)

