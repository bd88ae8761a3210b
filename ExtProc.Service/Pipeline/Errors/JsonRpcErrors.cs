using System.Buffers;
using System.Text.Json;

namespace ExtProc.Pipeline.Errors;

/// <summary>
/// JSON-RPC error replies for MCP routes that echo the request's id, so the client's SDK matches the
/// error to its pending request instead of reporting a transport failure.
/// </summary>
internal static class JsonRpcErrors
{
    public const int ParseError = -32700;
    public const int InvalidRequest = -32600;

    /// <param name="idJson">The request id as JSON text, or null when it could not be read.</param>
    public static LocalResponse Create(ProcessingContext context, GatewayError error, int rpcCode, string message, string? idJson)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("jsonrpc"u8, "2.0"u8);
            writer.WritePropertyName("id"u8);
            if (idJson is null)
            {
                writer.WriteNullValue();
            }
            else
            {
                // idJson came out of our strict reader (a string literal or an integer): safe to emit as is.
                writer.WriteRawValue(idJson, skipInputValidation: false);
            }

            writer.WriteStartObject("error"u8);
            writer.WriteNumber("code"u8, rpcCode);
            writer.WriteString("message"u8, message);
            writer.WriteStartObject("data"u8);
            writer.WriteString("code"u8, error.Code);
            writer.WriteString("request_id"u8, context.RequestId);
            writer.WriteEndObject();
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        var response = new LocalResponse(error.Status, buffer.WrittenMemory, "application/json", "extproc_" + error.Code);
        response.Headers.Add(new("x-extproc-error", error.Code));
        return response;
    }
}
