using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// Error bodies in each client's schema, and a defensive reader for whatever an upstream sent as its error
/// (OpenAI, Anthropic, Google, Mistral's flat form, Gemini-compat arrays, numeric codes, non-JSON).
/// Status codes are kept; only the body is rewrapped (providers.md §6.14).
/// </summary>
internal static class ErrorBodies
{
    /// <summary>The message and machine code of an upstream error body; never throws.</summary>
    public static (string Message, string? Code) ReadUpstream(ReadOnlySpan<byte> body, int status)
    {
        string? message = null;
        string? code = null;
        try
        {
            var reader = new Utf8JsonReader(body, JsonRead.Options);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartArray)
            {
                reader.Read(); // Gemini's OpenAI-compatible endpoint wraps the error in an array.
            }

            if (reader.TokenType == JsonTokenType.StartObject)
            {
                ReadErrorObject(ref reader, ref message, ref code, nested: false);
            }
        }
        catch (JsonException)
        {
            // Not JSON (a gateway's HTML page, a plain-text 503): report the status alone.
        }

        return (message ?? $"The upstream answered with HTTP {status}.", code);
    }

    private static void ReadErrorObject(ref Utf8JsonReader reader, ref string? message, ref string? code, bool nested)
    {
        while (JsonRead.NextProperty(ref reader))
        {
            if (!nested && reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ReadErrorObject(ref reader, ref message, ref code, nested: true);
                }
                else if (reader.TokenType == JsonTokenType.String)
                {
                    message = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                message = reader.TokenType == JsonTokenType.String ? reader.GetString() : message;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("code"u8) || reader.ValueTextEquals("status"u8) || reader.ValueTextEquals("type"u8))
            {
                var isType = reader.ValueTextEquals("type"u8);
                var isStatus = reader.ValueTextEquals("status"u8);
                reader.Read();
                var text = reader.TokenType switch
                {
                    JsonTokenType.String => reader.GetString(),
                    JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
                    _ => null,
                };
                reader.Skip();

                // Prefer a textual status (Google) or code over the generic "error" type of the envelope.
                if (text is not null && text != "error" && (code is null || isStatus || (!isType && !IsNumeric(text))))
                {
                    code = text;
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }
    }

    private static bool IsNumeric(string text) => text.Length > 0 && char.IsAsciiDigit(text[0]);

    public static void WriteOpenAI(Utf8JsonWriter writer, string message, ReadOnlySpan<byte> type, string? code)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("error"u8);
        WriteOpenAIErrorObject(writer, message, type, code);
        writer.WriteEndObject();
    }

    public static void WriteOpenAIErrorObject(Utf8JsonWriter writer, string message, ReadOnlySpan<byte> type, string? code)
    {
        writer.WriteStartObject();
        writer.WriteString("message"u8, message);
        writer.WriteString("type"u8, type);
        writer.WriteNull("param"u8);
        if (code is null)
        {
            writer.WriteNull("code"u8);
        }
        else
        {
            writer.WriteString("code"u8, code);
        }

        writer.WriteEndObject();
    }

    public static void WriteAnthropic(Utf8JsonWriter writer, ReadOnlySpan<byte> type, string message)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "error"u8);
        writer.WritePropertyName("error"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, type);
        writer.WriteString("message"u8, message);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>OpenAI error type for an HTTP status (openai-node picks its error class by status).</summary>
    public static ReadOnlySpan<byte> OpenAIType(int status) => status switch
    {
        401 => "authentication_error"u8,
        403 => "permission_error"u8,
        404 => "not_found_error"u8,
        429 => "rate_limit_error"u8,
        >= 500 => "server_error"u8,
        _ => "invalid_request_error"u8,
    };

    /// <summary>Anthropic error type for an HTTP status (the table of providers.md §2.6).</summary>
    public static ReadOnlySpan<byte> AnthropicType(int status) => status switch
    {
        401 => "authentication_error"u8,
        402 => "billing_error"u8,
        403 => "permission_error"u8,
        404 => "not_found_error"u8,
        413 => "request_too_large"u8,
        429 => "rate_limit_error"u8,
        503 or 529 => "overloaded_error"u8,
        504 => "timeout_error"u8,
        >= 500 => "api_error"u8,
        _ => "invalid_request_error"u8,
    };
}
