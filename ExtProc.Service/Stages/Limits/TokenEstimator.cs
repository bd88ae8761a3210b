using System.Buffers;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace ExtProc.Stages.Limits;

/// <summary>
/// Prompt-token estimates for admission, before the provider has counted anything. The text of every
/// string value of the request body is counted with the model family's tokenizer: o200k_base for
/// gpt-4o / gpt-4.1 / gpt-5 / o-series, cl100k_base for gpt-4 and gpt-3.5. Other families (Claude,
/// Gemini, open models) use o200k_base scaled by <see cref="ForeignFamilyRatio"/>: their tokenizers
/// cut English text into about 10–20 % more tokens, and an estimate should rather reserve too much
/// than too little (settlement corrects it). A body that is not JSON counts at <see cref="BytesPerToken"/>.
/// </summary>
internal static class TokenEstimator
{
    /// <summary>Multiplier on o200k counts for model families whose tokenizer we do not have.</summary>
    public const double ForeignFamilyRatio = 1.2;

    /// <summary>Fallback when nothing can be tokenized: UTF-8 bytes per token, low so it over-reserves.</summary>
    public const int BytesPerToken = 3;

    private static readonly Lazy<Tokenizer> O200k = new(static () => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    private static readonly Lazy<Tokenizer> Cl100k = new(static () => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    internal enum Family
    {
        O200k,
        Cl100k,
        Foreign,
    }

    public static Family FamilyOf(string? model)
    {
        if (model is null)
        {
            return Family.Foreign;
        }

        if (model.StartsWith("gpt-4o", StringComparison.OrdinalIgnoreCase) || model.StartsWith("gpt-4.1", StringComparison.OrdinalIgnoreCase)
            || model.StartsWith("gpt-5", StringComparison.OrdinalIgnoreCase) || model.StartsWith("chatgpt-", StringComparison.OrdinalIgnoreCase)
            || (model.Length > 1 && model[0] is 'o' or 'O' && char.IsAsciiDigit(model[1])))
        {
            return Family.O200k;
        }

        return model.StartsWith("gpt-4", StringComparison.OrdinalIgnoreCase) || model.StartsWith("gpt-3.5", StringComparison.OrdinalIgnoreCase)
            ? Family.Cl100k
            : Family.Foreign;
    }

    /// <summary>Tokens of the prompt in <paramref name="body"/> (every JSON string value, keys excluded).</summary>
    public static long EstimatePrompt(ReadOnlySpan<byte> body, string? model) => Count(body, model, onlyGenerated: false);

    /// <summary>Tokens of generated text in one streamed event (content, text, thinking, arguments fields).</summary>
    public static long EstimateGenerated(ReadOnlySpan<byte> eventJson, string? model) => Count(eventJson, model, onlyGenerated: true);

    private static long Count(ReadOnlySpan<byte> json, string? model, bool onlyGenerated)
    {
        var family = FamilyOf(model);
        var tokenizer = family == Family.Cl100k ? Cl100k.Value : O200k.Value;
        long tokens = 0;
        char[]? scratch = null;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256, CommentHandling = JsonCommentHandling.Disallow });
            var counting = !onlyGenerated;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName)
                {
                    counting = !onlyGenerated || IsGeneratedField(reader.ValueSpan);
                    continue;
                }

                if (reader.TokenType != JsonTokenType.String || !counting)
                {
                    continue;
                }

                var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
                if (scratch is null || scratch.Length < length)
                {
                    if (scratch is not null)
                    {
                        ArrayPool<char>.Shared.Return(scratch, clearArray: true);
                    }

                    scratch = ArrayPool<char>.Shared.Rent(Math.Max(256, length));
                }

                var written = reader.CopyString(scratch);
                tokens += tokenizer.CountTokens(scratch.AsSpan(0, written), considerPreTokenization: true, considerNormalization: false);
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return (json.Length + BytesPerToken - 1) / BytesPerToken;
        }
        finally
        {
            if (scratch is not null)
            {
                ArrayPool<char>.Shared.Return(scratch, clearArray: true);
            }
        }

        return family == Family.Foreign ? (long)Math.Ceiling(tokens * ForeignFamilyRatio) : tokens;
    }

    private static bool IsGeneratedField(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("content"u8) || name.SequenceEqual("text"u8) || name.SequenceEqual("thinking"u8)
        || name.SequenceEqual("arguments"u8) || name.SequenceEqual("partial_json"u8) || name.SequenceEqual("reasoning_content"u8);
}
