using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// Property names and values the request writers emit once per message or tool call, encoded once: the
/// writer copies them without scanning them for characters to escape every time.
/// </summary>
internal static class JsonNames
{
    public static readonly JsonEncodedText Type = Encode("type"u8);
    public static readonly JsonEncodedText Text = Encode("text"u8);
    public static readonly JsonEncodedText Role = Encode("role"u8);
    public static readonly JsonEncodedText Content = Encode("content"u8);
    public static readonly JsonEncodedText User = Encode("user"u8);
    public static readonly JsonEncodedText Assistant = Encode("assistant"u8);
    public static readonly JsonEncodedText Tool = Encode("tool"u8);
    public static readonly JsonEncodedText Id = Encode("id"u8);
    public static readonly JsonEncodedText Name = Encode("name"u8);
    public static readonly JsonEncodedText Input = Encode("input"u8);
    public static readonly JsonEncodedText ToolUse = Encode("tool_use"u8);
    public static readonly JsonEncodedText ToolResult = Encode("tool_result"u8);
    public static readonly JsonEncodedText ToolUseId = Encode("tool_use_id"u8);
    public static readonly JsonEncodedText ToolCalls = Encode("tool_calls"u8);
    public static readonly JsonEncodedText ToolCallId = Encode("tool_call_id"u8);
    public static readonly JsonEncodedText Function = Encode("function"u8);
    public static readonly JsonEncodedText Arguments = Encode("arguments"u8);
    public static readonly JsonEncodedText Model = Encode("model"u8);
    public static readonly JsonEncodedText Parts = Encode("parts"u8);
    public static readonly JsonEncodedText FunctionCall = Encode("functionCall"u8);
    public static readonly JsonEncodedText FunctionResponse = Encode("functionResponse"u8);
    public static readonly JsonEncodedText Args = Encode("args"u8);
    public static readonly JsonEncodedText Response = Encode("response"u8);
    public static readonly JsonEncodedText ThoughtSignature = Encode("thoughtSignature"u8);

    private static JsonEncodedText Encode(ReadOnlySpan<byte> utf8) => JsonEncodedText.Encode(utf8, JsonOut.Options.Encoder);
}
