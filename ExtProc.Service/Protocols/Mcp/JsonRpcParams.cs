using System.Buffers;
using System.Text.Json;

namespace ExtProc.Protocols.Mcp;

/// <summary>Edits of a JSON-RPC message that already passed <see cref="JsonRpcReader"/> (so keys are unique).</summary>
internal static class JsonRpcParams
{
    /// <summary>The message with <c>params.name</c> replaced; every other byte as the client sent it.</summary>
    public static ReadOnlyMemory<byte> ReplaceName(ReadOnlySpan<byte> message, string name)
    {
        var reader = new Utf8JsonReader(message);
        var inParams = false;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            if (reader.CurrentDepth == 1)
            {
                inParams = reader.ValueTextEquals("params"u8);
                continue;
            }

            if (inParams && reader.CurrentDepth == 2 && reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                var end = (int)reader.BytesConsumed;
                var output = new ArrayBufferWriter<byte>(message.Length + name.Length);
                output.Write(message[..start]);
                using (var writer = new Utf8JsonWriter(output))
                {
                    writer.WriteStringValue(name);
                }

                output.Write(message[end..]);
                return output.WrittenMemory;
            }
        }

        throw new InvalidOperationException("The message has no params.name.");
    }
}
