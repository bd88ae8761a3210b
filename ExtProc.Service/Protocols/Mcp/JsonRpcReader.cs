using System.Text;
using System.Text.Json;
using ExtProc.Protocols.Json;

namespace ExtProc.Protocols.Mcp;

/// <summary>
/// Reads one MCP JSON-RPC message (Streamable HTTP POST body) in one strict pass. A batch (top-level
/// array) is refused: batching is gone since MCP 2025-06-18 and checking only part of one is how gateways
/// get bypassed (faults.md §0.10). Fold variants of the envelope and of params.name/arguments are refused
/// (faults.md §3.3.3, J13), because some MCP servers match keys case-insensitively.
/// </summary>
internal static class JsonRpcReader
{
    private static readonly string[] EnvelopeFields = ["jsonrpc", "id", "method", "params", "result", "error"];
    private static readonly string[] ParamsFields = ["name", "arguments", "uri", "protocolversion"];

    /// <summary>False with <paramref name="violation"/> (and the id, when it could be read) for a refused body.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, int maxDepth, JsonRpcMessage message, out JsonViolation violation)
    {
        var names = JsonNameTracker.Rent();
        var reader = new StrictJsonReader(body, maxDepth, names);
        try
        {
            violation = ReadEnvelope(ref reader, message);
            return violation.IsNone;
        }
        finally
        {
            reader.Dispose();
            JsonNameTracker.Return(names);
        }
    }

    private static JsonViolation ReadEnvelope(ref StrictJsonReader reader, JsonRpcMessage message)
    {
        if (!reader.Read())
        {
            return reader.Violation.IsNone ? new JsonViolation(JsonViolationKind.InvalidJson, "The body is empty.") : reader.Violation;
        }

        if (reader.TokenType == JsonTokenType.StartArray)
        {
            return new JsonViolation(JsonViolationKind.InvalidField, "JSON-RPC batches are not accepted.");
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return new JsonViolation(JsonViolationKind.InvalidJson, "The body must be a JSON-RPC object.");
        }

        var version = false;
        var hasId = false;
        var hasResult = false;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 0)
            {
                break;
            }

            var name = reader.Text;
            if (name.SequenceEqual("jsonrpc"u8))
            {
                version = reader.Read() && reader.TokenType == JsonTokenType.String && reader.Text.SequenceEqual("2.0"u8);
                if (!version)
                {
                    return Invalid(ref reader, "jsonrpc must be \"2.0\".");
                }
            }
            else if (name.SequenceEqual("id"u8))
            {
                if (!reader.Read())
                {
                    break;
                }

                if (reader.TokenType == JsonTokenType.String)
                {
                    message.IdJson = "\"" + JsonEncodedText.Encode(reader.Text).Value + "\"";
                }
                else if (reader.TokenType == JsonTokenType.Number
                    && long.TryParse(reader.RawValue, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
                {
                    message.IdJson = Encoding.UTF8.GetString(reader.RawValue);
                }
                else
                {
                    // MCP: an id is a string or an integer, never null.
                    return Invalid(ref reader, "id must be a string or an integer.");
                }

                hasId = true;
            }
            else if (name.SequenceEqual("method"u8))
            {
                if (!reader.Read() || reader.TokenType != JsonTokenType.String || reader.Text.IsEmpty)
                {
                    return Invalid(ref reader, "method must be a non-empty string.");
                }

                message.Method = Encoding.UTF8.GetString(reader.Text);
            }
            else if (name.SequenceEqual("params"u8))
            {
                if (!reader.Read() || !ReadParams(ref reader, message))
                {
                    return Invalid(ref reader, "params must be an object.");
                }
            }
            else if (name.SequenceEqual("result"u8) || name.SequenceEqual("error"u8))
            {
                hasResult = true;
                if (!reader.Read() || !reader.SkipValue())
                {
                    break;
                }
            }
            else if (FieldNames.FoldsOntoAny(name, EnvelopeFields))
            {
                reader.Fail(JsonViolationKind.AmbiguousField, "The message has a key that folds onto a JSON-RPC field.");
                break;
            }
            else if (!reader.Read() || !reader.SkipValue())
            {
                break;
            }
        }

        if (!reader.Violation.IsNone || !reader.Finish())
        {
            return reader.Violation;
        }

        if (!version)
        {
            return new JsonViolation(JsonViolationKind.InvalidField, "jsonrpc must be \"2.0\".");
        }

        if (message.Method is not null)
        {
            if (hasResult)
            {
                return new JsonViolation(JsonViolationKind.InvalidField, "A message cannot be both a request and a response.");
            }

            message.Kind = hasId ? JsonRpcKind.Request : JsonRpcKind.Notification;
            return JsonViolation.None;
        }

        if (hasResult)
        {
            message.Kind = JsonRpcKind.Response;
            return JsonViolation.None;
        }

        return new JsonViolation(JsonViolationKind.MissingField, "The message has neither method nor result.");
    }

    private static bool ReadParams(ref StrictJsonReader reader, JsonRpcMessage message)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 1)
            {
                return true;
            }

            var name = reader.Text;
            if (name.SequenceEqual("name"u8) || name.SequenceEqual("uri"u8) || name.SequenceEqual("protocolVersion"u8))
            {
                var isVersion = name.SequenceEqual("protocolVersion"u8);
                if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                {
                    return false;
                }

                var value = Encoding.UTF8.GetString(reader.Text);
                if (isVersion)
                {
                    message.ProtocolVersion = value;
                }
                else
                {
                    message.Target = value;
                }
            }
            else if (name.SequenceEqual("arguments"u8))
            {
                if (!reader.Read())
                {
                    return false;
                }

                var start = reader.TokenStartIndex;
                if (!reader.SkipValue())
                {
                    return false;
                }

                message.ArgumentsBytes = (int)(reader.BytesConsumed - start);
            }
            else if (FieldNames.FoldsOntoAny(name, ParamsFields))
            {
                reader.Fail(JsonViolationKind.AmbiguousField, "params has a key that folds onto name, arguments or uri.");
                return false;
            }
            else if (!reader.Read() || !reader.SkipValue())
            {
                return false;
            }
        }

        return false;
    }

    private static JsonViolation Invalid(ref StrictJsonReader reader, string message) =>
        reader.Violation.IsNone ? new JsonViolation(JsonViolationKind.InvalidField, message) : reader.Violation;
}
