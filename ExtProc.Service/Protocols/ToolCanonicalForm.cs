using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using ExtProc.Buffers;

namespace ExtProc.Protocols;

/// <summary>
/// The canonical form of one tool definition: each token's kind, then the unescaped text (length-prefixed)
/// of names and strings or the raw text of numbers, hashed with SHA-256. Two spellings of the same
/// definition (escapes, whitespace) give the same hash; any change of content does not. The definition has
/// already passed the strict reader, so it is read here without checks.
/// </summary>
internal static class ToolCanonicalForm
{
    public static UInt128 Hash(ReadOnlySpan<byte> definition)
    {
        byte[]? buffer = null;
        PooledBytes.EnsureCapacity(ref buffer, 0, definition.Length + 64, minimum: 256);
        var length = 0;
        try
        {
            var reader = new Utf8JsonReader(definition, new JsonReaderOptions { MaxDepth = 1024 });
            while (reader.Read())
            {
                var kind = reader.TokenType;
                var escaped = reader.ValueIsEscaped && kind is JsonTokenType.PropertyName or JsonTokenType.String;
                var raw = kind is JsonTokenType.PropertyName or JsonTokenType.String or JsonTokenType.Number ? reader.ValueSpan : default;

                // Unescaped text is never longer than its escaped form, so raw.Length bounds the room needed.
                PooledBytes.EnsureCapacity(ref buffer, length, length + 5 + raw.Length);
                buffer![length] = (byte)kind;
                var text = buffer.AsSpan(length + 5);
                var textLength = escaped ? reader.CopyString(text) : raw.Length;
                if (!escaped)
                {
                    raw.CopyTo(text);
                }

                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length + 1), textLength);
                length += 5 + textLength;
            }

            Span<byte> digest = stackalloc byte[32];
            SHA256.HashData(buffer!.AsSpan(0, length), digest);
            return BinaryPrimitives.ReadUInt128BigEndian(digest);
        }
        finally
        {
            PooledBytes.Return(buffer!, length);
        }
    }
}
