using System.Buffers;
using System.Text.Json;

namespace ExtProc.Protocols.Mcp;

/// <summary>What a tools/list response says of one tool, for the decision to show it.</summary>
internal readonly ref struct ListedTool
{
    public ListedTool(string name, ReadOnlySpan<byte> definition, ToolAnnotations annotations)
    {
        Name = name;
        Definition = definition;
        Annotations = annotations;
    }

    public string Name { get; }

    /// <summary>The tool's whole JSON object as the server sent it.</summary>
    public ReadOnlySpan<byte> Definition { get; }

    public ToolAnnotations Annotations { get; }
}

/// <summary>The policy-relevant tool annotations (MCP 2025-03-26+); null when the server did not send one.</summary>
internal readonly record struct ToolAnnotations(bool? ReadOnlyHint, bool? DestructiveHint)
{
    /// <summary>The spec's defaults: a tool is destructive unless it says it is read-only or not destructive.</summary>
    public bool Destructive => ReadOnlyHint != true && DestructiveHint != false;
}

/// <summary>Decides, per listed tool, whether the caller sees it.</summary>
internal interface IToolListPolicy
{
    bool Keep(in ListedTool tool);
}

/// <summary>The lists a policy filters, each keyed by what a call names.</summary>
internal enum McpListKind
{
    Tools,
    Prompts,
    Resources,
}

internal enum ToolListOutcome
{
    /// <summary>Not a result carrying a tools array (an error, another message): pass it on as it is.</summary>
    NotAList,

    /// <summary>Every tool is kept: the original bytes go on.</summary>
    Unchanged,

    /// <summary>Some tools were removed: the output holds the new message.</summary>
    Filtered,

    /// <summary>A list we cannot read safely (bad JSON, duplicate keys): it must not reach the client.</summary>
    Invalid,
}

/// <summary>
/// Removes tools from a JSON-RPC tools/list result without rebuilding the rest of the message: the bytes
/// before and after each kept tool are copied as the server wrote them. Duplicate <c>result</c>, <c>tools</c>
/// or tool <c>name</c> keys make the list invalid, because a client that keeps the last one would see what
/// the filter did not check.
/// </summary>
internal static class ToolListFilter
{
    private const int MaxDepth = 128;

    public static ToolListOutcome Filter(ReadOnlySpan<byte> message, IToolListPolicy policy, IBufferWriter<byte> output) =>
        Filter(message, McpListKind.Tools, policy, output);

    /// <summary>Filters a tools/list, prompts/list or resources/list result (entries keyed by name, or uri for resources).</summary>
    public static ToolListOutcome Filter(ReadOnlySpan<byte> message, McpListKind kind, IToolListPolicy policy, IBufferWriter<byte> output)
    {
        try
        {
            return FilterCore(message, kind, policy, output);
        }
        catch (JsonException)
        {
            return ToolListOutcome.Invalid;
        }
    }

    private static ToolListOutcome FilterCore(ReadOnlySpan<byte> message, McpListKind kind, IToolListPolicy policy, IBufferWriter<byte> output)
    {
        var reader = new Utf8JsonReader(message, new JsonReaderOptions { MaxDepth = MaxDepth });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return ToolListOutcome.NotAList;
        }

        var seenResult = false;
        var outcome = ToolListOutcome.NotAList;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isResult = reader.ValueTextEquals("result"u8);
            reader.Read();
            if (!isResult)
            {
                reader.Skip();
                continue;
            }

            if (seenResult)
            {
                return ToolListOutcome.Invalid;
            }

            seenResult = true;
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            outcome = FilterResult(ref reader, message, kind, policy, output);
            if (outcome == ToolListOutcome.Invalid)
            {
                return outcome;
            }
        }

        return outcome;
    }

    private static ToolListOutcome FilterResult(ref Utf8JsonReader reader, ReadOnlySpan<byte> message, McpListKind kind, IToolListPolicy policy, IBufferWriter<byte> output)
    {
        var outcome = ToolListOutcome.NotAList;
        var seenTools = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isTools = reader.ValueTextEquals(ArrayName(kind));
            reader.Read();
            if (!isTools || reader.TokenType != JsonTokenType.StartArray)
            {
                if (isTools && seenTools)
                {
                    return ToolListOutcome.Invalid;
                }

                seenTools |= isTools;
                reader.Skip();
                continue;
            }

            if (seenTools)
            {
                return ToolListOutcome.Invalid;
            }

            seenTools = true;
            outcome = FilterTools(ref reader, message, kind, policy, output);
            if (outcome == ToolListOutcome.Invalid)
            {
                return outcome;
            }
        }

        return outcome;
    }

    private static ToolListOutcome FilterTools(ref Utf8JsonReader reader, ReadOnlySpan<byte> message, McpListKind kind, IToolListPolicy policy, IBufferWriter<byte> output)
    {
        var open = (int)reader.TokenStartIndex + 1;
        var kept = new List<(int Start, int End)>();
        var removed = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return ToolListOutcome.Invalid;
            }

            var start = (int)reader.TokenStartIndex;
            if (!ReadTool(ref reader, kind == McpListKind.Resources ? "uri"u8 : "name"u8, out var name, out var annotations))
            {
                return ToolListOutcome.Invalid;
            }

            var end = (int)reader.BytesConsumed;
            if (policy.Keep(new ListedTool(name, message[start..end], annotations)))
            {
                kept.Add((start, end));
            }
            else
            {
                removed = true;
            }
        }

        if (!removed)
        {
            return ToolListOutcome.Unchanged;
        }

        var close = (int)reader.TokenStartIndex;
        output.Write(message[..open]);
        for (var i = 0; i < kept.Count; i++)
        {
            if (i > 0)
            {
                output.Write(","u8);
            }

            output.Write(message[kept[i].Start..kept[i].End]);
        }

        output.Write(message[close..]);
        return ToolListOutcome.Filtered;
    }

    private static ReadOnlySpan<byte> ArrayName(McpListKind kind) => kind switch
    {
        McpListKind.Prompts => "prompts"u8,
        McpListKind.Resources => "resources"u8,
        _ => "tools"u8,
    };

    private static bool ReadTool(ref Utf8JsonReader reader, ReadOnlySpan<byte> key, out string name, out ToolAnnotations annotations)
    {
        string? found = null;
        annotations = default;
        var seenAnnotations = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals(key))
            {
                if (found is not null || !reader.Read() || reader.TokenType != JsonTokenType.String)
                {
                    name = "";
                    return false;
                }

                found = reader.GetString();
            }
            else if (reader.ValueTextEquals("annotations"u8))
            {
                reader.Read();
                if (seenAnnotations || (reader.TokenType == JsonTokenType.StartObject && !ReadAnnotations(ref reader, out annotations)))
                {
                    name = "";
                    return false;
                }

                seenAnnotations = true;
                if (reader.TokenType != JsonTokenType.EndObject)
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        name = found ?? "";
        return found is not null;
    }

    private static bool ReadAnnotations(ref Utf8JsonReader reader, out ToolAnnotations annotations)
    {
        bool? readOnly = null;
        bool? destructive = null;
        annotations = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isReadOnly = reader.ValueTextEquals("readOnlyHint"u8);
            var isDestructive = reader.ValueTextEquals("destructiveHint"u8);
            reader.Read();
            if (isReadOnly || isDestructive)
            {
                if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False) || (isReadOnly ? readOnly : destructive) is not null)
                {
                    return false;
                }

                if (isReadOnly)
                {
                    readOnly = reader.GetBoolean();
                }
                else
                {
                    destructive = reader.GetBoolean();
                }
            }
            else
            {
                reader.Skip();
            }
        }

        annotations = new ToolAnnotations(readOnly, destructive);
        return true;
    }
}
