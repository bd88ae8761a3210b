using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;

namespace ExtProc.Pipeline.Errors;

/// <summary>
/// Renders a <see cref="GatewayError"/> in the caller's own dialect, so its SDK parses it into its
/// own exception type: OpenAI and Anthropic error objects, Google's error object for Gemini, and a
/// JSON-RPC error for MCP. Every body carries the stable code and the request id.
/// </summary>
internal static class ErrorResponses
{
    /// <summary>Caller-supplied names (models, tools) echoed in a message: at most 128 characters, controls replaced.</summary>
    public static string Printable(string value)
    {
        var length = Math.Min(value.Length, 128);
        return string.Create(length, value, static (span, source) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = char.IsControl(source[i]) ? '?' : source[i];
            }
        });
    }

    public static LocalResponse Create(ProcessingContext context, GatewayError error, string message) =>
        Create(context.Protocol, error, message, context.RequestId, context.Mcp?.IdJson);

    /// <summary>A 401 with its <c>WWW-Authenticate</c> challenge (RFC 6750; RFC 9728 on MCP routes).</summary>
    public static LocalResponse Unauthorized(ProcessingContext context, GatewayError error, string message, string challenge)
    {
        var response = Create(context, error, message);
        response.Headers.Add(new("www-authenticate", challenge));
        return response;
    }

    /// <summary>A 429/503 with <c>Retry-After</c> in whole seconds (at least 1).</summary>
    public static LocalResponse RetryLater(ProcessingContext context, GatewayError error, string message, TimeSpan retryAfter)
    {
        var response = Create(context, error, message);
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        response.Headers.Add(new("retry-after", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return response;
    }

    /// <param name="jsonRpcId">The id of the MCP request being answered, as JSON, once its body was read.</param>
    public static LocalResponse Create(ProtocolKind protocol, GatewayError error, string message, string requestId, string? jsonRpcId = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            switch (protocol)
            {
                case ProtocolKind.AnthropicMessages:
                    WriteAnthropic(writer, error, message, requestId);
                    break;
                case ProtocolKind.Gemini:
                    WriteGoogle(writer, error, message, requestId);
                    break;
                case ProtocolKind.Mcp:
                    WriteJsonRpc(writer, error, message, requestId, jsonRpcId);
                    break;
                default:
                    WriteOpenAi(writer, error, message, requestId);
                    break;
            }
        }

        var response = new LocalResponse(error.Status, buffer.WrittenMemory, "application/json", "extproc_" + error.Code);
        response.Headers.Add(new("x-extproc-error", error.Code));
        return response;
    }

    private static void WriteOpenAi(Utf8JsonWriter writer, GatewayError error, string message, string requestId)
    {
        writer.WriteStartObject();
        writer.WriteStartObject("error"u8);
        writer.WriteString("message"u8, message);
        writer.WriteString("type"u8, OpenAiType(error.Status));
        writer.WriteNull("param"u8);
        writer.WriteString("code"u8, error.Code);
        writer.WriteString("request_id"u8, requestId);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteAnthropic(Utf8JsonWriter writer, GatewayError error, string message, string requestId)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "error"u8);
        writer.WriteStartObject("error"u8);
        writer.WriteString("type"u8, AnthropicType(error.Status));
        writer.WriteString("message"u8, message);
        writer.WriteString("code"u8, error.Code);

        // The Anthropic SDKs surface error.details.error_code as the exception's ErrorCode.
        writer.WriteStartObject("details"u8);
        writer.WriteString("error_code"u8, error.Code);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteString("request_id"u8, requestId);
        writer.WriteEndObject();
    }

    private static void WriteGoogle(Utf8JsonWriter writer, GatewayError error, string message, string requestId)
    {
        writer.WriteStartObject();
        writer.WriteStartObject("error"u8);
        writer.WriteNumber("code"u8, error.Status);
        writer.WriteString("message"u8, message);
        writer.WriteString("status"u8, GoogleStatus(error.Status));
        writer.WriteStartArray("details"u8);
        writer.WriteStartObject();
        writer.WriteString("@type"u8, "type.googleapis.com/google.rpc.ErrorInfo"u8);
        writer.WriteString("reason"u8, error.Code);
        writer.WriteString("domain"u8, "extproc"u8);
        writer.WriteStartObject("metadata"u8);
        writer.WriteString("request_id"u8, requestId);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteJsonRpc(Utf8JsonWriter writer, GatewayError error, string message, string requestId, string? id)
    {
        // Before the body is read the request's id is not known: null is what JSON-RPC prescribes then.
        writer.WriteStartObject();
        writer.WriteString("jsonrpc"u8, "2.0"u8);
        if (id is null)
        {
            writer.WriteNull("id"u8);
        }
        else
        {
            writer.WritePropertyName("id"u8);
            writer.WriteRawValue(id);
        }

        writer.WriteStartObject("error"u8);
        writer.WriteNumber("code"u8, JsonRpcCode(error.Status));
        writer.WriteString("message"u8, message);
        writer.WriteStartObject("data"u8);
        writer.WriteString("code"u8, error.Code);
        writer.WriteString("request_id"u8, requestId);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static string OpenAiType(int status) => status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    private static string AnthropicType(int status) => status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    private static string GoogleStatus(int status) => status switch
    {
        400 or 413 or 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION",
    };

    // -32600 invalid request for client errors, -32603 internal error otherwise; the HTTP status
    // carries the rest.
    private static int JsonRpcCode(int status) => status < 500 ? -32600 : -32603;
}
